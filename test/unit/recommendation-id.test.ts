import { describe, expect, it } from 'vitest';
import { mintRecommendationId, parseRecommendationId, versionTag } from '../../src/serving/recommendation-id.js';

describe('recommendationId', () => {
  it('names the version and the arm, fits PutEvents\' 40 characters, and does not repeat', () => {
    const ids = new Set<string>();
    for (let i = 0; i < 1000; i++) ids.add(mintRecommendationId('v-20261207-0001', 1));
    expect(ids.size).toBe(1000);
    const id = [...ids][0]!;
    expect(id.length).toBeLessThanOrEqual(40);
    expect(parseRecommendationId(id)).toEqual({ versionTag: versionTag('v-20261207-0001'), arm: 1 });
    expect(parseRecommendationId(mintRecommendationId('v2'))).toEqual({ versionTag: versionTag('v2'), arm: 0 });
    expect(versionTag('v2')).not.toBe(versionTag('v3'));
    expect(versionTag('v2')).toMatch(/^[0-9a-f]{8}$/);
  });

  it('marks lists no version produced, and leaves foreign ids unattributed', () => {
    expect(parseRecommendationId(mintRecommendationId(undefined))).toEqual({ versionTag: undefined, arm: undefined });
    expect(parseRecommendationId('RID-0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0')).toBeUndefined();
    expect(parseRecommendationId('2d2c6b5e-1f0b-4ad0-8f3e-0c8c2f5e9a11')).toBeUndefined();
    expect(parseRecommendationId('')).toBeUndefined();
    expect(parseRecommendationId(null)).toBeUndefined();
    expect(() => mintRecommendationId('v', 36)).toThrow(RangeError);
  });
});
