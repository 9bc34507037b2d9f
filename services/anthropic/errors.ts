/**
 * Anthropic's error shape, `{"type": "error", "error": {"type", "message"}}`, for everything
 * `POST /v1/messages` answers with an error status (the rest of promptmesh answers OpenAI's).
 */
import { toApiError, type ApiError } from '../kit/errors';

/** Anthropic's error type for an HTTP status. */
export function anthropicErrorType(status: number): string {
  switch (status) {
    case 400:
    case 409:
    case 422:
      return 'invalid_request_error';
    case 401:
      return 'authentication_error';
    case 402:
      return 'billing_error';
    case 403:
      return 'permission_error';
    case 404:
      return 'not_found_error';
    case 413:
      return 'request_too_large';
    case 429:
      return 'rate_limit_error';
    case 503:
    case 529:
      return 'overloaded_error';
    case 504:
      return 'timeout_error';
    default:
      return 'api_error';
  }
}

/** Anthropic's own error types: an error that already is one keeps it (e.g. relayed from llm). */
const ANTHROPIC_ERROR_TYPES = new Set([
  'invalid_request_error',
  'authentication_error',
  'billing_error',
  'permission_error',
  'not_found_error',
  'request_too_large',
  'rate_limit_error',
  'api_error',
  'overloaded_error',
  'timeout_error',
]);

/** An Anthropic error body. */
export interface AnthropicErrorBody {
  type: 'error';
  error: { type: string; message: string };
}

/**
 * An error as Anthropic's body. The field a 400 is about leads the message when the message does
 * not name it already (Anthropic's shape has no `param`).
 */
export function anthropicErrorBody(err: unknown): { status: number; body: AnthropicErrorBody; error: ApiError } {
  const error = toApiError(err);
  const body = error.toBody().error;
  const message = body.param && !body.message.includes(body.param) ? `${body.param}: ${body.message}` : body.message;
  const type = error.statusCode >= 500 && ANTHROPIC_ERROR_TYPES.has(error.type) ? error.type : anthropicErrorType(error.statusCode);
  return { status: error.statusCode, body: { type: 'error', error: { type, message } }, error };
}
