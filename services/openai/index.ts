/**
 * The OpenAI wire protocol, owned once for every service that speaks it (router and llm):
 * request, response, chunk and error schemas (TypeBox: the types, the validation and the
 * response serialization at once), the promptmesh extension fields, the message rules, and
 * server-sent events both ways.
 */
export * from './schemas';
export { checkMessages, contentText } from './messages';
export { SSE_DONE, SSE_HEADERS, parseSse, sseData, writeSse, type SseEvent, type WriteSseOptions } from './sse';
export * from './embeddings';
export * from './responses';
