import type { Socket } from 'node:net';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { Type, type Static } from 'typebox';

/**
 * The OpenAI error shape every promptmesh API answers with: the type of {@link ErrorBody}, and
 * the response schema of error answers (`services/openai`).
 */
export const ErrorBodySchema = Type.Object(
  {
    error: Type.Object(
      {
        /** A category: `invalid_request_error`, `authentication_error`, `rate_limit_error`, ... */
        type: Type.String(),
        /** For people: says what is wrong, naming the field for invalid input. */
        message: Type.String(),
        /** The field at fault (dotted path), or null. */
        param: Type.Unsafe<string | null>({ type: ['string', 'null'] }),
        /** A stable machine code, or null. */
        code: Type.Unsafe<string | null>({ type: ['string', 'null'] }),
      },
      { additionalProperties: false },
    ),
  },
  { additionalProperties: false },
);
/** The OpenAI error shape (see {@link ErrorBodySchema}). */
export type ErrorBody = Static<typeof ErrorBodySchema>;

/** What an {@link ApiError} is made of. */
export interface ApiErrorOptions {
  /** The HTTP status. */
  status: number;
  /** The OpenAI error type (`invalid_request_error`, `rate_limit_error`, ...). */
  type: string;
  /** For people: what is wrong, naming the field for invalid input. */
  message: string;
  /** The field at fault (dotted path). @default null */
  param?: string | null;
  /** A stable machine code. @default null */
  code?: string | null;
  /** Extra response headers, e.g. `retry-after`. @default none */
  headers?: Record<string, string>;
}

/**
 * An error with an HTTP status that the kit's error handler turns into the OpenAI error shape.
 * Throw it from any route or from code a route calls.
 */
export class ApiError extends Error {
  /** The HTTP status (Fastify reads `statusCode`). */
  readonly statusCode: number;
  readonly type: string;
  readonly param: string | null;
  readonly code: string | null;
  /** Extra response headers, e.g. `retry-after`. */
  readonly headers: Record<string, string>;

  constructor(options: ApiErrorOptions) {
    super(options.message);
    this.name = 'ApiError';
    this.statusCode = options.status;
    this.type = options.type;
    this.param = options.param ?? null;
    this.code = options.code ?? null;
    this.headers = options.headers ?? {};
  }

  toBody(): ErrorBody {
    return { error: { type: this.type, message: this.message, param: this.param, code: this.code } };
  }
}

/** 400: the input is invalid; `param` names the field. */
export function badRequest(message: string, param: string | null = null, code: string | null = 'invalid_request'): ApiError {
  return new ApiError({ status: 400, type: 'invalid_request_error', message, param, code });
}
/** 401: no key, or one that is not known. */
export function unauthorized(message = 'missing or invalid API key'): ApiError {
  return new ApiError({ status: 401, type: 'authentication_error', message, code: 'invalid_api_key', headers: { 'www-authenticate': 'Bearer' } });
}
/** 403: the key lacks the scope the route needs. */
export function forbidden(message: string): ApiError {
  return new ApiError({ status: 403, type: 'permission_error', message, code: 'insufficient_scope' });
}
/** 404: `code` says what was not found (`model_not_found`, `template_not_found`, ...). */
export function notFound(message: string, code: string, param: string | null = null): ApiError {
  return new ApiError({ status: 404, type: 'not_found_error', message, param, code });
}
/** 409: the request conflicts with the current state. */
export function conflict(message: string, param: string | null = null): ApiError {
  return new ApiError({ status: 409, type: 'conflict_error', message, param, code: 'conflict' });
}
/** 413: the body or a field is larger than the limit. */
export function payloadTooLarge(message: string, param: string | null = null): ApiError {
  return new ApiError({ status: 413, type: 'invalid_request_error', message, param, code: 'payload_too_large' });
}
/** 429 with a Retry-After in whole seconds (at least 1). */
export function rateLimited(message: string, retryAfterMs: number): ApiError {
  const seconds = Math.max(1, Math.ceil(retryAfterMs / 1000));
  return new ApiError({ status: 429, type: 'rate_limit_error', message, code: 'rate_limited', headers: { 'retry-after': String(seconds) } });
}
/** 503: a dependency is down. */
export function unavailable(message: string, code = 'dependency_unavailable'): ApiError {
  return new ApiError({ status: 503, type: 'service_unavailable_error', message, code });
}
/** 502/504 style upstream failures (a provider answered badly or not in time). */
export function upstreamError(statusCode: 502 | 504, message: string, code = 'upstream_error'): ApiError {
  return new ApiError({ status: statusCode, type: 'upstream_error', message, code });
}

/** Turns an ajv instance path (`/messages/0/role`) into a dotted param (`messages[0].role`). */
export function instancePathToParam(instancePath: string, missing?: string): string {
  const parts = instancePath.split('/').filter(Boolean);
  if (missing) parts.push(missing);
  let out = '';
  for (const p of parts) {
    if (/^\d+$/.test(p)) out += `[${p}]`;
    else out += out ? `.${p}` : p;
  }
  return out;
}

interface AjvLikeError {
  instancePath: string;
  keyword: string;
  message?: string;
  params: Record<string, any>;
}

/**
 * The error that says most about a failure. Without `anyOf` it is the first. A failed `anyOf`
 * (a value that may be a string or a list of parts) reports every branch: the deepest error
 * wins, and among equals one that is not about the type (the branch whose type matched is the
 * one the client meant); when every branch failed on its type, one error lists the types.
 */
function mostTelling(errors: AjvLikeError[]): AjvLikeError {
  const anyOf = errors.find((e) => e.keyword === 'anyOf');
  const branches = errors.filter((e) => e.keyword !== 'anyOf');
  if (!anyOf || branches.length === 0) return errors[0]!;
  const depth = Math.max(...branches.map((e) => e.instancePath.length));
  const deepest = branches.filter((e) => e.instancePath.length === depth);
  const constraint = deepest.find((e) => e.keyword !== 'type');
  if (constraint) return constraint;
  const types = deepest.map((e) => String(e.params.type));
  return { ...deepest[0]!, message: `must be ${types.slice(0, -1).join(', ')}${types.length > 1 ? ' or ' : ''}${types.at(-1)}` };
}

/** Builds the 400 for a Fastify schema validation failure, naming the field. */
export function validationError(errors: AjvLikeError[], context: string): ApiError {
  const first = mostTelling(errors);
  let param: string;
  let message: string;
  const where = context === 'body' ? '' : `${context} `;
  switch (first.keyword) {
    case 'required':
      param = instancePathToParam(first.instancePath, first.params.missingProperty);
      message = `${where}'${param}' is required`;
      break;
    case 'additionalProperties':
      param = instancePathToParam(first.instancePath, first.params.additionalProperty);
      message = `${where}'${param}' is not a known field`;
      break;
    case 'dependencies':
      param = instancePathToParam(first.instancePath, first.params.property);
      message = `${where}'${param}' needs '${instancePathToParam(first.instancePath, first.params.missingProperty)}'`;
      break;
    default: {
      param = instancePathToParam(first.instancePath) || context;
      message = `${where}'${param}' ${first.message ?? 'is invalid'}`;
      if (first.keyword === 'enum' && Array.isArray(first.params.allowedValues)) {
        message += `: ${first.params.allowedValues.map((v: unknown) => JSON.stringify(v)).join(', ')}`;
      }
    }
  }
  return badRequest(message, param);
}

/** Maps anything thrown in a request to an {@link ApiError}; unknown errors become a 500. */
export function toApiError(err: unknown): ApiError {
  if (err instanceof ApiError) return err;
  const e = err as FastifyError & { validation?: AjvLikeError[]; validationContext?: string };
  if (e && Array.isArray(e.validation) && e.validation.length > 0) {
    return validationError(e.validation, e.validationContext ?? 'body');
  }
  switch (e?.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return payloadTooLarge('request body is larger than the limit');
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new ApiError({ status: 415, type: 'invalid_request_error', message: `unsupported content type; send application/json`, code: 'unsupported_media_type' });
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return badRequest('request body is empty; send a JSON object', 'body');
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return badRequest(`request body is not valid JSON: ${e.message}`, 'body', 'invalid_json');
  }
  if (e instanceof SyntaxError || e?.name === 'SyntaxError') {
    return badRequest(`request body is not valid JSON: ${e.message}`, 'body', 'invalid_json');
  }
  const status = typeof e?.statusCode === 'number' ? e.statusCode : 500;
  if (status >= 400 && status < 500) {
    return new ApiError({ status, type: 'invalid_request_error', message: e.message || 'invalid request', code: e.code ?? null });
  }
  return new ApiError({ status: 500, type: 'server_error', message: 'internal error', code: 'internal_error' });
}

/** Installs the error and not-found handlers on an app. */
export function installErrorHandlers(app: FastifyInstance): void {
  app.setErrorHandler((err: unknown, request: FastifyRequest, reply: FastifyReply) => {
    const apiError = toApiError(err);
    if (apiError.statusCode >= 500) request.log.error({ err }, 'request failed');
    else request.log.debug({ err: apiError.message }, 'request rejected');
    if (reply.sent || reply.raw.headersSent) return;
    void reply.code(apiError.statusCode).headers(apiError.headers).send(apiError.toBody());
  });
  app.setNotFoundHandler((request, reply) => {
    void reply.code(404).send(notFound(`no route for ${request.method} ${request.url.split('?')[0]}`, 'route_not_found').toBody());
  });
}

/**
 * Answers a request Node's HTTP parser refused before Fastify saw it (headers or URL over the
 * size limit, malformed HTTP, a client that took too long) in the OpenAI error shape, then closes
 * the connection. Used as Fastify's `clientErrorHandler`.
 */
export function writeClientError(err: NodeJS.ErrnoException, socket: Socket): void {
  if (err.code === 'ECONNRESET' || socket.destroyed) return;
  let apiError: ApiError;
  if (err.code === 'HPE_HEADER_OVERFLOW') {
    apiError = new ApiError({ status: 431, type: 'invalid_request_error', message: 'request line and headers are larger than the limit (16 KiB)', code: 'headers_too_large' });
  } else if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') {
    apiError = new ApiError({ status: 408, type: 'invalid_request_error', message: 'the request was not received in time', code: 'request_timeout' });
  } else {
    apiError = badRequest('malformed HTTP request', null, 'bad_request');
  }
  if (socket.writable) {
    const body = JSON.stringify(apiError.toBody());
    socket.write(
      `HTTP/1.1 ${apiError.statusCode} ${apiError.statusCode === 431 ? 'Request Header Fields Too Large' : apiError.statusCode === 408 ? 'Request Timeout' : 'Bad Request'}\r\n` +
        `content-type: application/json; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
    );
  }
  socket.destroy(err);
}
