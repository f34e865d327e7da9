/**
 * The API's one error path: every error (AppError, fastify's own, anything else) becomes an AppError
 * and is answered as `{ code, message, field?, retriable, errors? }` with the code's status. Stack
 * traces and unexpected errors' messages stay in the log.
 */
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { AppError, isAppError } from '../errors/index.js';
import type { ErrorBody, RecordError } from './schemas.js';

/** RECORD_INVALID with every problem of every failing record. */
export type RecordsInvalid = AppError & { errors: RecordError[] };

export function recordsInvalid(noun: string, total: number, errors: RecordError[]): RecordsInvalid {
  const failing = new Set(errors.map((e) => e.index)).size;
  const first = errors[0];
  const detail = first === undefined ? '' : `: ${first.field} ${first.reason}${errors.length > 1 ? ` (and ${errors.length - 1} more)` : ''}`;
  const err = new AppError('RECORD_INVALID', `${failing} of ${total} ${noun} invalid, nothing was accepted${detail}`, {
    ...(first === undefined ? {} : { field: first.field }),
  });
  return Object.assign(err, { errors });
}

interface AjvError {
  instancePath: string;
  keyword: string;
  params: Record<string, unknown>;
  message?: string;
}

type FrameworkError = Partial<FastifyError> & { validation?: AjvError[]; validationContext?: string };

/** Any error -> the AppError answered for it. */
export function toAppError(err: unknown, bodyLimitBytes: number): AppError {
  if (err instanceof AppError) return err;
  const e = (err ?? {}) as FrameworkError;
  if (Array.isArray(e.validation) && e.validation.length > 0) return requestInvalid(e.validation, e.validationContext ?? 'body');
  switch (e.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new AppError('PAYLOAD_TOO_LARGE', `the request body is larger than ${bodyLimitBytes} bytes (api.bodyLimitBytes); send fewer records per request`);
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new AppError('UNSUPPORTED_MEDIA_TYPE', 'the request body must be JSON (Content-Type: application/json)');
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return new AppError('REQUEST_MALFORMED', 'the request body is not valid JSON');
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return new AppError('REQUEST_MALFORMED', 'the request body is empty but Content-Type is application/json');
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return new AppError('REQUEST_MALFORMED', 'the request body length does not match its Content-Length');
    case 'FST_ERR_BAD_URL':
      return new AppError('REQUEST_MALFORMED', 'the request URL is not valid');
    default:
  }
  if (typeof e.statusCode === 'number' && e.statusCode >= 400 && e.statusCode < 500) {
    return new AppError('REQUEST_MALFORMED', `the request could not be read (${e.code ?? 'HTTP ' + e.statusCode})`, { cause: err });
  }
  return new AppError('INTERNAL_ERROR', 'internal error; the server log has the details', { cause: err });
}

/** fastify/ajv validation errors -> REQUEST_INVALID naming the field (`eventList[3].sentAt`). */
function requestInvalid(errors: AjvError[], context: string): AppError {
  // A union (anyOf) that no branch matched: ajv lists each branch's error, then the anyOf one.
  const union = errors.find((v) => v.keyword === 'anyOf');
  const v = union ?? errors[0]!;
  const field = fieldOf(v, context);
  let reason: string;
  if (v.keyword === 'required') reason = 'is required';
  else if (v.keyword === 'additionalProperties') reason = 'is not an accepted field';
  else if (union) {
    const types = errors.filter((x) => x.instancePath === union.instancePath && x.keyword === 'type').map((x) => String(x.params.type));
    reason = types.length > 0 ? `must be ${types.map((t) => (t === 'object' ? 'an object' : `a ${t}`)).join(' or ')}` : (v.message ?? 'is not valid');
  } else reason = v.message ?? 'is not valid';
  return new AppError('REQUEST_INVALID', `${field} ${reason}`, { field });
}

function fieldOf(v: AjvError, context: string): string {
  const parts = v.instancePath
    .split('/')
    .slice(1)
    .map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'));
  if (v.keyword === 'required' && v.params.missingProperty !== undefined) parts.push(String(v.params.missingProperty));
  if (v.keyword === 'additionalProperties' && v.params.additionalProperty !== undefined) parts.push(String(v.params.additionalProperty));
  const path = parts.reduce((acc, p) => (/^\d+$/.test(p) ? `${acc}[${p}]` : acc === '' ? p : `${acc}.${p}`), '');
  if (path === '') return context === 'body' ? '(body)' : context;
  return context === 'body' ? path : `${context}.${path}`;
}

export function errorBody(err: AppError): ErrorBody {
  const body: ErrorBody = { code: err.code, message: err.message, retriable: err.retriable };
  if (err.field !== undefined) body.field = err.field;
  const errors = (err as Partial<RecordsInvalid>).errors;
  if (isAppError(err, 'RECORD_INVALID') && Array.isArray(errors)) body.errors = errors;
  return body;
}

/** fastify's error handler: map, log (5xx as errors, with the cause), answer. */
export function errorHandler(bodyLimitBytes: number) {
  return (err: unknown, request: FastifyRequest, reply: FastifyReply): FastifyReply => {
    const app = toAppError(err, bodyLimitBytes);
    // A retriable 5xx without a cause (e.g. no model version yet) is a state, not a fault: no stack trace.
    if (app.status >= 500 && app.retriable && app.cause === undefined) request.log.warn({ code: app.code }, app.message);
    else if (app.status >= 500) request.log.error({ err: app.cause ?? err, code: app.code }, app.message);
    // A 4xx's cause holds what the client is not told (e.g. a server folder): logged only.
    else request.log.info({ code: app.code, field: app.field, ...(app.cause !== undefined ? { detail: app.cause } : {}) }, app.message);
    if (app.retriable && app.status === 503) void reply.header('retry-after', '1');
    return reply.code(app.status).send(errorBody(app));
  };
}
