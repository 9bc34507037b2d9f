import type { Socket } from 'node:net';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';

/** The OpenAI error shape every promptmesh API answers with. */
export interface ErrorBody {
  error: {
    /** A category: `invalid_request_error`, `authentication_error`, `rate_limit_error`, ... */
    type: string;
    /** For people: says what is wrong, naming the field for invalid input. */
    message: string;
    /** The field at fault (dotted path), or null. */
    param: string | null;
    /** A stable machine code, or null. */
    code: string | null;
  };
}

/**
 * An error with an HTTP status that the kit's error handler turns into the OpenAI error shape.
 * Throw it from any route or from code a route calls.
 */
export class ApiError extends Error {
  constructor(
    readonly statusCode: number,
    readonly type: string,
    message: string,
    readonly param: string | null = null,
    readonly code: string | null = null,
    /** Extra response headers, e.g. `retry-after`. */
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = 'ApiError';
  }

  toBody(): ErrorBody {
    return { error: { type: this.type, message: this.message, param: this.param, code: this.code } };
  }
}

/** 400: the input is invalid; `param` names the field. */
export function badRequest(message: string, param: string | null = null, code: string | null = 'invalid_request'): ApiError {
  return new ApiError(400, 'invalid_request_error', message, param, code);
}
export function unauthorized(message = 'missing or invalid API key'): ApiError {
  return new ApiError(401, 'authentication_error', message, null, 'invalid_api_key', { 'www-authenticate': 'Bearer' });
}
export function forbidden(message: string): ApiError {
  return new ApiError(403, 'permission_error', message, null, 'insufficient_scope');
}
export function notFound(message: string, param: string | null = null): ApiError {
  return new ApiError(404, 'not_found_error', message, param, 'not_found');
}
export function conflict(message: string, param: string | null = null): ApiError {
  return new ApiError(409, 'conflict_error', message, param, 'conflict');
}
export function payloadTooLarge(message: string, param: string | null = null): ApiError {
  return new ApiError(413, 'invalid_request_error', message, param, 'payload_too_large');
}
/** 429 with a Retry-After in whole seconds (at least 1). */
export function rateLimited(message: string, retryAfterMs: number): ApiError {
  const seconds = Math.max(1, Math.ceil(retryAfterMs / 1000));
  return new ApiError(429, 'rate_limit_error', message, null, 'rate_limited', { 'retry-after': String(seconds) });
}
/** 503: a dependency is down. */
export function unavailable(message: string, code = 'dependency_unavailable'): ApiError {
  return new ApiError(503, 'service_unavailable_error', message, null, code);
}
/** 502/504 style upstream failures (a provider answered badly or not in time). */
export function upstreamError(statusCode: 502 | 504, message: string, code = 'upstream_error'): ApiError {
  return new ApiError(statusCode, 'upstream_error', message, null, code);
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

/** Builds the 400 for a Fastify schema validation failure, naming the field. */
export function validationError(errors: AjvLikeError[], context: string): ApiError {
  const first = errors[0]!;
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
      return new ApiError(415, 'invalid_request_error', `unsupported content type; send application/json`, null, 'unsupported_media_type');
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
    return new ApiError(status, 'invalid_request_error', e.message || 'invalid request', null, e.code ?? null);
  }
  return new ApiError(500, 'server_error', 'internal error', null, 'internal_error');
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
    void reply.code(404).send(notFound(`no route for ${request.method} ${request.url.split('?')[0]}`).toBody());
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
    apiError = new ApiError(431, 'invalid_request_error', 'request line and headers are larger than the limit (16 KiB)', null, 'headers_too_large');
  } else if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') {
    apiError = new ApiError(408, 'invalid_request_error', 'the request was not received in time', null, 'request_timeout');
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
