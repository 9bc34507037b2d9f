/**
 * The Anthropic Messages API wire format (`POST /v1/messages`), owned once like
 * `services/openai`: the request schemas, the error shape, the event stream writer and the
 * translation to and from the canonical chat request.
 */
export * from './schemas';
export * from './errors';
export * from './translate';
export * from './sse';
export * from './blocks';
