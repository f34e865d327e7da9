/**
 * SigV4 verification (src/api/sigv4.ts) against requests signed by the SDKs' own signer, and the
 * Personalize-compat translations (ARNs, properties, error types) of src/api/personalize-compat.ts.
 */
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { SignatureV4 } from '@smithy/signature-v4';
import { AppError } from '../../src/errors/index.js';
import { arnName, awsErrorType, columnName, columnsOf } from '../../src/api/personalize-compat.js';
import { accessKeyIdOf, keyIdOf, MAX_SKEW_MS, parseAmzDate, secretAccessKeyFor, Sha256, SigV4Error, verifySigV4, type ArrivedRequest } from '../../src/api/sigv4.js';

const AKID = accessKeyIdOf('0123456789ab');
const SECRET = secretAccessKeyFor('root-key-of-tests', 'g1', '0123456789ab');
const NOW = Date.UTC(2026, 11, 7, 12, 0, 0);

/** A request as the SDK sends it (signed with its signer), as the server receives it. */
async function signed(body: string, o: { secret?: string; at?: number; sha256Header?: boolean } = {}): Promise<ArrivedRequest> {
  const signer = new SignatureV4({ credentials: { accessKeyId: AKID, secretAccessKey: o.secret ?? SECRET }, region: 'eu-west-1', service: 'personalize', sha256: Sha256 });
  const headers: Record<string, string> = { host: '127.0.0.1:8080', 'content-type': 'application/json', 'user-agent': 'aws-sdk-js/3' };
  if (o.sha256Header) headers['x-amz-content-sha256'] = createHash('sha256').update(body).digest('hex');
  const req = await signer.sign({ method: 'POST', protocol: 'http:', hostname: '127.0.0.1', port: 8080, path: '/personalize/g1/recommendations', query: {}, headers, body }, { signingDate: new Date(o.at ?? NOW) });
  const lower: Record<string, string> = {};
  for (const [k, v] of Object.entries(req.headers)) lower[k.toLowerCase()] = v;
  return { method: 'POST', url: '/personalize/g1/recommendations', headers: lower, body: Buffer.from(body) };
}

const secretOf = (akid: string) => (akid === AKID ? SECRET : undefined);
const refused = async (p: Promise<unknown>): Promise<SigV4Error> => {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(SigV4Error);
    return err as SigV4Error;
  }
  throw new Error('not refused');
};

describe('SigV4 verification', () => {
  it('accepts what the SDK signer signed (with and without x-amz-content-sha256), and names the key', async () => {
    const body = JSON.stringify({ campaignArn: 'arn:aws:personalize:eu-west-1:1:campaign/c', userId: 'u1' });
    expect(await verifySigV4(await signed(body), secretOf, NOW + 60_000)).toMatchObject({ accessKeyId: AKID, region: 'eu-west-1', service: 'personalize' });
    expect((await verifySigV4(await signed(body, { sha256Header: true }), secretOf, NOW)).accessKeyId).toBe(AKID);
  });

  it('refuses a changed body, a wrong secret, an unknown key, a date more than 15 minutes off, a missing header', async () => {
    const body = '{"userId":"u1"}';
    const tampered = { ...(await signed(body)), body: Buffer.from('{"userId":"u2"}') };
    expect((await refused(verifySigV4(tampered, secretOf, NOW))).awsType).toBe('InvalidSignatureException');
    const hashed = { ...(await signed(body, { sha256Header: true })), body: Buffer.from('{"userId":"u2"}') };
    expect((await refused(verifySigV4(hashed, secretOf, NOW))).field).toBe('x-amz-content-sha256');
    expect((await refused(verifySigV4(await signed(body, { secret: `${SECRET}x` }), secretOf, NOW))).awsType).toBe('InvalidSignatureException');
    expect((await refused(verifySigV4(await signed(body), () => undefined, NOW))).awsType).toBe('UnrecognizedClientException');
    const old = await refused(verifySigV4(await signed(body, { at: NOW - MAX_SKEW_MS - 1000 }), secretOf, NOW));
    expect(old.awsType).toBe('InvalidSignatureException');
    expect(old.message).toMatch(/Signature expired/);
    expect((await verifySigV4(await signed(body, { at: NOW - MAX_SKEW_MS + 5000 }), secretOf, NOW)).accessKeyId).toBe(AKID);
    const unsigned = await signed(body);
    delete unsigned.headers.authorization;
    expect((await refused(verifySigV4(unsigned, secretOf, NOW))).awsType).toBe('MissingAuthenticationTokenException');
    const noDate = await signed(body);
    delete noDate.headers['x-amz-date'];
    expect((await refused(verifySigV4(noDate, secretOf, NOW))).awsType).toBe('IncompleteSignatureException');
    const otherHost = await signed(body);
    otherHost.headers.host = 'evil:8080';
    expect((await refused(verifySigV4(otherHost, secretOf, NOW))).awsType).toBe('InvalidSignatureException');
  });

  it('credentials: the access key id names the key; the secret depends on the root key, the group and the key', () => {
    expect(keyIdOf(AKID)).toBe('0123456789ab');
    expect(keyIdOf('AKIAIOSFODNN7EXAMPLE')).toBeUndefined();
    expect(SECRET).toHaveLength(40);
    expect(secretAccessKeyFor('root-key-of-tests', 'g2', '0123456789ab')).not.toBe(SECRET);
    expect(secretAccessKeyFor('another-root-key', 'g1', '0123456789ab')).not.toBe(SECRET);
    expect(secretAccessKeyFor('root-key-of-tests', 'g1', '0123456789ab')).toBe(SECRET);
    expect(() => secretAccessKeyFor('', 'g1', 'x')).toThrow(/api.rootKey/);
    expect(parseAmzDate('20261207T120000Z')?.getTime()).toBe(NOW);
    expect(parseAmzDate('20261332T120000Z')).toBeUndefined();
  });
});

describe('Personalize-compat translations', () => {
  it('ARNs name resources by their last segment, of the expected type', () => {
    expect(arnName('arn:aws:personalize:us-east-1:123:filter/my-filter', 'filterArn', ['filter']).name).toBe('my-filter');
    expect(arnName('arn:aws:personalize:us-east-1:123:dataset/dg/ITEMS', 'datasetArn', ['dataset']).name).toBe('ITEMS');
    expect(() => arnName('arn:aws:personalize:us-east-1:123:campaign/c', 'filterArn', ['filter'])).toThrow(/filterArn must name a filter/);
    expect(() => arnName('campaign/c', 'campaignArn', ['campaign'])).toThrow(AppError);
  });

  it('properties: camelCase keys become column names, | strings lists (metadata only)', () => {
    expect(columnName('numberOfRatings')).toBe('NUMBER_OF_RATINGS');
    expect(columnName('GENRES')).toBe('GENRES');
    expect(columnsOf('{"genres":"Comedy|Drama","price":9.5}', 'items[0].properties', true)).toEqual({ GENRES: ['Comedy', 'Drama'], PRICE: 9.5 });
    expect(columnsOf('{"deviceType":"a|b"}', 'eventList[0].properties', false)).toEqual({ DEVICE_TYPE: 'a|b' });
    expect(() => columnsOf('[1]', 'users[0].properties', true)).toThrow(/users\[0\]\.properties/);
    expect(() => columnsOf('{', 'users[0].properties', true)).toThrow(/JSON/);
  });

  it('errors: the AWS type the SDKs name', () => {
    expect(awsErrorType(new AppError('REQUEST_INVALID', 'x'))).toBe('InvalidInputException');
    expect(awsErrorType(new AppError('FILTER_NOT_FOUND', 'x'))).toBe('ResourceNotFoundException');
    expect(awsErrorType(new AppError('USER_NOT_FOUND', 'x'))).toBe('ResourceNotFoundException');
    expect(awsErrorType(new AppError('FORBIDDEN', 'x'))).toBe('AccessDeniedException');
    expect(awsErrorType(new AppError('RATE_LIMITED', 'x'))).toBe('ThrottlingException');
    expect(awsErrorType(new AppError('INTERNAL_ERROR', 'x'))).toBe('InternalFailure');
  });
});
