/**
 * AWS Signature Version 4 for the Personalize-compatible mount (src/api/personalize-compat.ts):
 * credentials issued by streamrec for its API keys, and the verification of a signed request.
 *
 * Credentials. SigV4 is a MAC: the server must know the secret the client signs with, while
 * streamrec stores only the sha256 of an API key (auth.ts). So the secret access key is not stored
 * at all: it is derived, `HMAC-SHA256(HMAC-SHA256("streamrec-sigv4-v1", api.rootKey), group "\n"
 * keyId)`, and the access key id names the key (`SR` + its id in capitals). Every instance holds
 * api.rootKey already, so each can recompute any key's secret; nobody without the root key can
 * (the root key already grants everything). Deleting the API key revokes its credentials (the
 * lookup finds no key); changing api.rootKey changes every secret. The credentials carry the API
 * key's group and scopes.
 *
 * Verification. The request is signed again with `@smithy/signature-v4` (the SDKs' own signer) over
 * exactly the headers the client listed in SignedHeaders, the path as received and the raw body,
 * and the signatures compared in constant time. x-amz-content-sha256, when sent, must be the body's
 * hash. A request whose x-amz-date is more than 15 minutes from the server's clock is refused.
 */
import { createHash, createHmac, timingSafeEqual, type BinaryLike } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { SignatureV4 } from '@smithy/signature-v4';
import { AppError, type ErrorCode } from '../errors/index.js';

/** The signing name of Personalize's runtime and events APIs (their endpoints differ, the name does not). */
export const SIGNING_SERVICE = 'personalize';
/** The largest clock difference AWS accepts between x-amz-date and the server. */
export const MAX_SKEW_MS = 15 * 60_000;

/** The error type an AWS SDK names (x-amzn-errortype) for each way a signature is refused. */
export type SigV4ErrorType = 'MissingAuthenticationTokenException' | 'IncompleteSignatureException' | 'UnrecognizedClientException' | 'InvalidSignatureException';

/** A refused signature: an AppError (401 UNAUTHENTICATED) that also names the AWS error type. */
export class SigV4Error extends AppError {
  constructor(
    readonly awsType: SigV4ErrorType,
    message: string,
    field: string,
    code: ErrorCode = 'UNAUTHENTICATED',
  ) {
    super(code, message, { field });
  }
}

/** The access key id of an API key (its id: 12 hex digits). */
export function accessKeyIdOf(keyId: string): string {
  return `SR${keyId.toUpperCase()}`;
}

/** The API key id an access key id names, or undefined when it names none. */
export function keyIdOf(accessKeyId: string): string | undefined {
  const m = /^SR([0-9A-F]{12})$/.exec(accessKeyId);
  return m?.[1]?.toLowerCase();
}

/** The secret access key of a group's API key. */
export function secretAccessKeyFor(rootKey: string, group: string, keyId: string): string {
  if (rootKey === '') throw new AppError('FORBIDDEN', 'SigV4 credentials are derived from api.rootKey, which is not set', { field: 'api.rootKey' });
  const derivationKey = createHmac('sha256', 'streamrec-sigv4-v1').update(rootKey, 'utf8').digest();
  return createHmac('sha256', derivationKey).update(`${group}\n${keyId}`, 'utf8').digest('base64').slice(0, 40);
}

/** What a signed request presents, parsed from its Authorization header. */
export interface PresentedSignature {
  accessKeyId: string;
  date: string;
  region: string;
  service: string;
  signedHeaders: string[];
  signature: string;
}

const AUTH_PATTERN = /^AWS4-HMAC-SHA256 Credential=([^/,\s]+)\/(\d{8})\/([^/,\s]+)\/([^/,\s]+)\/aws4_request,\s*SignedHeaders=([a-z0-9;._-]+),\s*Signature=([0-9a-f]{64})$/;

/** The Authorization header of a SigV4 request; SigV4Error when it is missing or not one. */
export function parseAuthorization(header: string | undefined): PresentedSignature {
  if (header === undefined || header === '') {
    throw new SigV4Error('MissingAuthenticationTokenException', 'the request is not signed: send an AWS Signature Version 4 Authorization header (an AWS SDK does)', 'authorization');
  }
  const m = AUTH_PATTERN.exec(header.trim());
  if (!m) {
    throw new SigV4Error(
      'IncompleteSignatureException',
      'the Authorization header is not AWS4-HMAC-SHA256 Credential=KEY/DATE/REGION/SERVICE/aws4_request, SignedHeaders=..., Signature=...',
      'authorization',
    );
  }
  const [, accessKeyId = '', date = '', region = '', service = '', signed = '', signature = ''] = m;
  return { accessKeyId, date, region, service, signedHeaders: signed.split(';'), signature };
}

/** `20250131T120000Z` -> a Date, or undefined when it is not one. */
export function parseAmzDate(value: string): Date | undefined {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(value);
  if (!m) return undefined;
  const [, y, mo, d, h, mi, s] = m.map(Number) as number[];
  const date = new Date(Date.UTC(y!, mo! - 1, d!, h!, mi!, s!));
  return Number.isNaN(date.getTime()) || date.getUTCDate() !== d ? undefined : date;
}

/** A request as it arrived: method, raw URL (path and query as sent), headers, raw body. */
export interface ArrivedRequest {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

/**
 * Checks a request's signature. `secretOf` gives the secret of an access key id (undefined: not
 * known). Returns what was presented (the caller maps the access key to its principal); throws
 * SigV4Error otherwise.
 */
export async function verifySigV4(request: ArrivedRequest, secretOf: (accessKeyId: string) => string | undefined, now: number): Promise<PresentedSignature> {
  const auth = request.headers.authorization;
  const presented = parseAuthorization(Array.isArray(auth) ? auth[0] : auth);
  if (presented.service !== SIGNING_SERVICE) {
    throw new SigV4Error('InvalidSignatureException', `the credential scope names service ${JSON.stringify(presented.service)}; this endpoint is ${SIGNING_SERVICE}`, 'authorization');
  }
  const amzDate = headerValue(request.headers, 'x-amz-date');
  const signingDate = amzDate === undefined ? undefined : parseAmzDate(amzDate);
  if (signingDate === undefined) throw new SigV4Error('IncompleteSignatureException', 'the x-amz-date header is missing or not YYYYMMDDTHHMMSSZ', 'x-amz-date');
  if (!presented.signedHeaders.includes('x-amz-date') || !presented.signedHeaders.includes('host')) {
    throw new SigV4Error('IncompleteSignatureException', 'SignedHeaders must include host and x-amz-date', 'authorization');
  }
  if (amzDate!.slice(0, 8) !== presented.date) throw new SigV4Error('InvalidSignatureException', `the credential scope's date ${presented.date} is not the day of x-amz-date ${amzDate}`, 'x-amz-date');
  const skew = signingDate.getTime() - now;
  if (Math.abs(skew) > MAX_SKEW_MS) {
    throw new SigV4Error(
      'InvalidSignatureException',
      `Signature expired: ${amzDate} is ${skew < 0 ? 'earlier' : 'later'} than the server's ${new Date(now).toISOString()} by more than 15 minutes`,
      'x-amz-date',
    );
  }
  const secretAccessKey = secretOf(presented.accessKeyId);
  if (secretAccessKey === undefined) {
    throw new SigV4Error('UnrecognizedClientException', `the access key id ${JSON.stringify(presented.accessKeyId)} is not known (revoked, mistyped, or of a group this service does not serve)`, 'accessKeyId');
  }
  const bodyHash = sha256Hex(request.body);
  const claimed = headerValue(request.headers, 'x-amz-content-sha256');
  if (claimed !== undefined && claimed !== 'UNSIGNED-PAYLOAD' && claimed !== bodyHash) {
    throw new SigV4Error('InvalidSignatureException', 'x-amz-content-sha256 is not the sha256 of the body', 'x-amz-content-sha256');
  }
  const headers: Record<string, string> = {};
  for (const name of presented.signedHeaders) {
    const v = headerValue(request.headers, name);
    if (v === undefined) throw new SigV4Error('IncompleteSignatureException', `the signed header ${name} is not in the request`, 'authorization');
    headers[name] = v;
  }
  const q = request.url.indexOf('?');
  const path = q < 0 ? request.url : request.url.slice(0, q);
  const signer = new SignatureV4({ credentials: { accessKeyId: presented.accessKeyId, secretAccessKey }, region: presented.region, service: SIGNING_SERVICE, sha256: Sha256, applyChecksum: false });
  const signed = await signer.sign(
    { method: request.method, protocol: 'http:', hostname: headers.host ?? '', path, query: q < 0 ? {} : parseQuery(request.url.slice(q + 1)), headers, body: request.body },
    { signingDate, signableHeaders: new Set(presented.signedHeaders) },
  );
  const expected = /Signature=([0-9a-f]{64})$/.exec(String(signed.headers.authorization ?? signed.headers.Authorization ?? ''))?.[1] ?? '';
  if (expected.length !== 64 || !timingSafeEqual(Buffer.from(expected, 'hex'), Buffer.from(presented.signature, 'hex'))) {
    throw new SigV4Error('InvalidSignatureException', 'The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method.', 'signature');
  }
  return presented;
}

function headerValue(headers: IncomingHttpHeaders, name: string): string | undefined {
  const v = headers[name];
  return Array.isArray(v) ? v.join(',') : v;
}

function sha256Hex(data: BinaryLike): string {
  return createHash('sha256').update(data).digest('hex');
}

function parseQuery(query: string): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const [k, v] of new URLSearchParams(query)) {
    const had = out[k];
    out[k] = had === undefined ? v : [...[had].flat(), v];
  }
  return out;
}

/** The signer's hash: sha256, or HMAC-SHA256 when given a key (the Checksum interface of @smithy/types). */
export class Sha256 {
  private readonly h: ReturnType<typeof createHash> | ReturnType<typeof createHmac>;
  constructor(secret?: string | ArrayBuffer | ArrayBufferView) {
    this.h = secret === undefined ? createHash('sha256') : createHmac('sha256', bytes(secret));
  }
  update(data: string | ArrayBuffer | ArrayBufferView): void {
    this.h.update(bytes(data));
  }
  digest(): Promise<Uint8Array> {
    return Promise.resolve(new Uint8Array(this.h.digest()));
  }
  reset(): void {
    throw new Error('not used by the signer');
  }
}

function bytes(data: string | ArrayBuffer | ArrayBufferView): Buffer {
  if (typeof data === 'string') return Buffer.from(data, 'utf8');
  if (ArrayBuffer.isView(data)) return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  return Buffer.from(data);
}
