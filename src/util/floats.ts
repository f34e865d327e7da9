/** Float32Array <-> bytes (little-endian, the platform's) and base64, for state values and model files. */

export function floatsToBuffer(a: Float32Array): Buffer {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength);
}

/** A copy in a fresh, aligned Float32Array (a Buffer's own offset need not be aligned). */
export function bufferToFloats(b: Uint8Array): Float32Array {
  const out = new Float32Array(b.byteLength / 4);
  new Uint8Array(out.buffer).set(b);
  return out;
}

export const floatsToBase64 = (a: Float32Array): string => floatsToBuffer(a).toString('base64');

export const base64ToFloats = (s: string): Float32Array => bufferToFloats(Buffer.from(s, 'base64'));
