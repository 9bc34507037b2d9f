/**
 * The fake provider's Amazon Bedrock side: the Converse API (`POST /model/{modelId}/converse`),
 * ConverseStream (`/converse-stream`, the binary `application/vnd.amazon.eventstream`, each
 * frame encoded with `@smithy/eventstream-codec` as Bedrock sends it) and, for embeddings,
 * InvokeModel (`/invoke`) with the Titan and Cohere embedding bodies. Requests must carry a SigV4
 * `Authorization` for the `bedrock` service; bodies are checked the way Bedrock checks them
 * (roles alternate starting with a user turn, toolResult answers the toolUse of the turn before,
 * toolConfig is present when tool blocks are).
 */
import type { IncomingMessage } from 'node:http';
import { EventStreamCodec, type MessageHeaders } from '@smithy/eventstream-codec';
import { HttpError, THINKING_FIRST_MESSAGE, estimateTokens, fakeVector, thinkingSignature, type Json, type Reply, type StreamEvents } from './wire';

const codec = new EventStreamCodec(
  (bytes) => new TextDecoder().decode(bytes),
  (text) => new TextEncoder().encode(text),
);

/** A Bedrock runtime operation the fake serves. */
export type BedrockOperation = 'converse' | 'converse-stream' | 'invoke';

/** The operation and model of a Bedrock runtime path, or undefined when it is none. */
export function bedrockRoute(method: string | undefined, path: string): { modelId: string; op: BedrockOperation } | undefined {
  if (method !== 'POST') return undefined;
  const m = /^\/model\/([^/]+)\/(converse|converse-stream|invoke)$/.exec(path);
  if (!m) return undefined;
  let modelId: string;
  try {
    modelId = decodeURIComponent(m[1]!);
  } catch {
    return undefined;
  }
  return { modelId, op: m[2] as BedrockOperation };
}

/**
 * Checks the SigV4 signature's presence and scope (service `bedrock`, and the access key when
 * the fake was given one); the signature itself is not recomputed.
 */
export function checkBedrockAuth(req: IncomingMessage, accessKeyId: string | undefined): void {
  const auth = req.headers.authorization ?? '';
  const m = /^AWS4-HMAC-SHA256 Credential=([^/]+)\/(\d{8})\/([a-z0-9-]+)\/([a-z-]+)\/aws4_request, SignedHeaders=[^,]+, Signature=[0-9a-f]{64}$/.exec(auth);
  if (!m || !req.headers['x-amz-date']) throw new HttpError(403, 'MissingAuthenticationTokenException', 'Missing Authentication Token');
  if (m[4] !== 'bedrock') throw new HttpError(403, 'InvalidSignatureException', `Credential should be scoped to correct service: 'bedrock'.`);
  if (accessKeyId !== undefined && m[1] !== accessKeyId) throw new HttpError(403, 'UnrecognizedClientException', 'The security token included in the request is invalid.');
}

const invalid = (message: string) => new HttpError(400, 'ValidationException', message);

/**
 * Validates a Converse body and returns the canonical form the fake builds replies from
 * (Anthropic-like field names: `system`, `stop_sequences`, `max_tokens`).
 */
export function parseConverse(body: Json | undefined, modelId: string, stream: boolean): Json {
  if (!body) throw new HttpError(400, 'SerializationException', 'Could not parse the request body');
  const messages = body.messages;
  if (!Array.isArray(messages) || messages.length === 0) throw invalid('A conversation must start with a user message. Try again with a conversation that starts with a user message.');
  let toolBlocks = false;
  messages.forEach((m: Json, i: number) => {
    if (m?.role !== 'user' && m?.role !== 'assistant') throw invalid(`1 validation error detected: Value '${String(m?.role)}' at 'messages.${i + 1}.member.role' failed to satisfy constraint: Member must satisfy enum value set: [user, assistant]`);
    if (i === 0 && m.role !== 'user') throw invalid('A conversation must start with a user message. Try again with a conversation that starts with a user message.');
    if (i > 0 && messages[i - 1].role === m.role) throw invalid('A conversation must alternate between user and assistant roles. Make sure the conversation alternates between user and assistant roles and try again.');
    if (!Array.isArray(m.content) || m.content.length === 0) throw invalid(`The content field in the Message object at messages.${i}.content is empty. Add a ContentBlock object to the content field and try again.`);
    for (const block of m.content as Json[]) {
      if (!block || typeof block !== 'object' || Object.keys(block).length !== 1) throw invalid(`messages.${i}.content: each ContentBlock must set exactly one member`);
      if (block.toolUse || block.toolResult) toolBlocks = true;
      if (block.image && !(block.image.source?.bytes && ['png', 'jpeg', 'gif', 'webp'].includes(block.image.format))) throw invalid(`messages.${i}.content: invalid image block`);
    }
    const uses = (messages[i - 1]?.content ?? []).filter((b: Json) => b?.toolUse).map((b: Json) => b.toolUse.toolUseId);
    const results = (m.content as Json[]).filter((b) => b?.toolResult).map((b) => b.toolResult.toolUseId);
    if (results.length > uses.length) throw invalid(`The number of toolResult blocks at messages.${i}.content exceeds the number of toolUse blocks of previous turn.`);
    for (const id of results) if (!uses.includes(id)) throw invalid(`The toolUseId ${String(id)} at messages.${i}.content does not match a toolUse of the previous turn.`);
    if (uses.length > 0 && results.length < uses.length) throw invalid(`Expected toolResult blocks at messages.${i}.content for the following Ids: ${uses.filter((u: string) => !results.includes(u)).join(', ')}`);
  });
  if (toolBlocks && !body.toolConfig) throw invalid('The toolConfig field must be defined when using toolUse and toolResult content blocks.');
  const thinking = body.additionalModelRequestFields?.thinking;
  checkReasoning(messages, /anthropic\.claude/.test(modelId) && thinking?.type === 'enabled');
  const inference = body.inferenceConfig ?? {};
  if (inference.maxTokens !== undefined && !(Number.isInteger(inference.maxTokens) && inference.maxTokens >= 1)) {
    throw invalid("1 validation error detected: Value at 'inferenceConfig.maxTokens' failed to satisfy constraint: Member must have value greater than or equal to 1");
  }
  if (inference.temperature !== undefined && !(typeof inference.temperature === 'number' && inference.temperature >= 0 && inference.temperature <= 1)) {
    throw invalid("1 validation error detected: Value at 'inferenceConfig.temperature' failed to satisfy constraint: Member must have value less than or equal to 1");
  }
  const choice = body.toolConfig?.toolChoice;
  if (choice && Object.keys(choice).length !== 1) throw invalid('toolConfig.toolChoice must set exactly one of auto, any, tool');
  return {
    model: modelId,
    messages: messages.map((m: Json) => ({ role: m.role, content: m.content })),
    ...(Array.isArray(body.system) ? { system: body.system } : {}),
    stop_sequences: inference.stopSequences,
    max_tokens: inference.maxTokens,
    ...(thinking && typeof thinking === 'object' ? { thinking } : {}),
    stream,
  };
}

/**
 * Claude's thinking rules as Bedrock passes them on: a `reasoningText` carries the signature it
 * was answered with (checked against its text), `redactedContent` its bytes, and with thinking
 * on, a tool-use continuation has its last assistant turn start with its reasoning.
 */
function checkReasoning(messages: Json[], thinkingOn: boolean): void {
  messages.forEach((m, i) => {
    (m.content as Json[]).forEach((b, j) => {
      const r = b.reasoningContent;
      if (!r) return;
      if (r.reasoningText) {
        const { text, signature } = r.reasoningText;
        if (typeof signature !== 'string' || signature.length === 0) throw invalid(`The model returned the following errors: messages.${i}.content.${j}.thinking.signature: Field required`);
        if (typeof text !== 'string' || signature !== thinkingSignature(text)) throw invalid(`The model returned the following errors: messages.${i}.content.${j}: Invalid \`signature\` in \`thinking\` block`);
      } else if (!r.redactedContent) {
        throw invalid(`messages.${i}.content.${j}.reasoningContent must set reasoningText or redactedContent`);
      }
    });
  });
  const last = messages.at(-1);
  if (!thinkingOn || last?.role !== 'user' || !(last.content as Json[]).some((b) => b?.toolResult)) return;
  const at = messages.length - 2;
  const first = (messages[at]?.content as Json[] | undefined)?.[0];
  if (!first?.reasoningContent) {
    const found = first?.toolUse ? 'tool_use' : 'text';
    throw invalid(`The model returned the following errors: messages.${at}.content.0.type: Expected \`thinking\` or \`redacted_thinking\`, but found \`${found}\`. ${THINKING_FIRST_MESSAGE}`);
  }
}

const stopReasonOf = (r: Reply) => (r.finish === 'tool' ? 'tool_use' : r.finish === 'length' ? 'max_tokens' : r.finish === 'stop_sequence' ? 'stop_sequence' : 'end_turn');

function usageOf(r: Reply): Json {
  const cached = r.cachedTokens ?? 0;
  const written = r.cacheWriteTokens ?? 0;
  return {
    inputTokens: r.promptTokens - cached - written,
    outputTokens: r.completionTokens,
    totalTokens: r.promptTokens + r.completionTokens,
    ...(cached > 0 || written > 0 ? { cacheReadInputTokens: cached, cacheWriteInputTokens: written } : {}),
  };
}

/** The Converse answer. */
export function converseBody(r: Reply): Json {
  const content: Json[] = [];
  if (r.reasoning) content.push({ reasoningContent: { reasoningText: { text: r.reasoning, signature: thinkingSignature(r.reasoning) } } });
  if (r.toolCalls.length > 0) for (const tc of r.toolCalls) content.push({ toolUse: { toolUseId: tc.id, name: tc.name, input: JSON.parse(tc.arguments) } });
  else content.push({ text: r.pieces.join('') });
  return { output: { message: { role: 'assistant', content } }, stopReason: stopReasonOf(r), usage: usageOf(r), metrics: { latencyMs: 1 } };
}

const str = (value: string) => ({ type: 'string' as const, value });

/** One event-stream frame, as Bedrock sends it (with the `p` padding field real frames carry). */
export function eventFrame(eventType: string, payload: Json): Uint8Array {
  const headers: MessageHeaders = { ':event-type': str(eventType), ':content-type': str('application/json'), ':message-type': str('event') };
  return codec.encode({ headers, body: new TextEncoder().encode(JSON.stringify({ ...payload, p: 'abcdefghij' })) });
}

/** An exception frame (`:message-type: exception`), as Bedrock sends errors mid-stream. */
export function exceptionFrame(exceptionType: string, message: string): Uint8Array {
  const headers: MessageHeaders = { ':exception-type': str(exceptionType), ':content-type': str('application/json'), ':message-type': str('exception') };
  return codec.encode({ headers, body: new TextEncoder().encode(JSON.stringify({ message })) });
}

/** A frame whose payload no longer matches its CRC: what a corrupted stream looks like. */
export function brokenFrame(): Uint8Array {
  const frame = Buffer.from(eventFrame('contentBlockDelta', { contentBlockIndex: 0, delta: { text: 'broken' } }));
  frame[frame.length - 6] ^= 0xff;
  return frame;
}

/** The ConverseStream frames of a reply. */
export function converseStreamEvents(r: Reply): StreamEvents {
  const head: Uint8Array[] = [eventFrame('messageStart', { role: 'assistant' })];
  let index = 0;
  if (r.reasoning) {
    head.push(eventFrame('contentBlockDelta', { contentBlockIndex: 0, delta: { reasoningContent: { text: r.reasoning } } }));
    head.push(eventFrame('contentBlockDelta', { contentBlockIndex: 0, delta: { reasoningContent: { signature: thinkingSignature(r.reasoning) } } }));
    head.push(eventFrame('contentBlockStop', { contentBlockIndex: 0 }));
    index = 1;
  }
  const tokens: Uint8Array[] = [];
  const tail: Uint8Array[] = [];
  if (r.toolCalls.length > 0) {
    r.toolCalls.forEach((tc, k) => {
      const i = index + k;
      tokens.push(eventFrame('contentBlockStart', { contentBlockIndex: i, start: { toolUse: { toolUseId: tc.id, name: tc.name } } }));
      const step = Math.max(1, Math.ceil(tc.arguments.length / 3));
      for (let at = 0; at < tc.arguments.length; at += step) {
        tokens.push(eventFrame('contentBlockDelta', { contentBlockIndex: i, delta: { toolUse: { input: tc.arguments.slice(at, at + step) } } }));
      }
      tokens.push(eventFrame('contentBlockStop', { contentBlockIndex: i }));
    });
  } else {
    for (const p of r.pieces) tokens.push(eventFrame('contentBlockDelta', { contentBlockIndex: index, delta: { text: p } }));
    tail.push(eventFrame('contentBlockStop', { contentBlockIndex: index }));
  }
  tail.push(eventFrame('messageStop', { stopReason: stopReasonOf(r) }));
  tail.push(eventFrame('metadata', { usage: usageOf(r), metrics: { latencyMs: 1 } }));
  return { head, tokens, tail };
}

/** The Bedrock error type (`x-amzn-errortype`) and message for a status. */
export function bedrockStatusError(status: number): [string, string] {
  const map: Record<number, [string, string]> = {
    400: ['ValidationException', 'invalid request'],
    403: ['AccessDeniedException', 'You don\'t have access to the model with the specified model ID.'],
    404: ['ResourceNotFoundException', 'Could not resolve the foundation model from the provided model identifier.'],
    408: ['ModelTimeoutException', 'Model has timed out in processing the request.'],
    424: ['ModelErrorException', 'The model returned an error.'],
    429: ['ThrottlingException', 'Too many requests, please wait before trying again.'],
    500: ['InternalServerException', 'The server encountered an internal error.'],
    503: ['ServiceUnavailableException', 'Bedrock is unable to process your request.'],
  };
  return map[status] ?? ['InternalServerException', `fake error ${status}`];
}

/** InvokeModel for the embedding models (Titan Text Embeddings, Cohere Embed). */
export function invokeEmbeddings(modelId: string, body: Json | undefined): Json {
  if (!body) throw new HttpError(400, 'SerializationException', 'Could not parse the request body');
  if (/titan-embed/.test(modelId)) {
    if (typeof body.inputText !== 'string' || body.inputText.length === 0) throw invalid('Malformed input request: #: required key [inputText] not found');
    const dims = body.dimensions ?? 1024;
    if (![256, 512, 1024].includes(dims)) throw invalid('Malformed input request: #/dimensions: 256, 512 or 1024');
    return { embedding: fakeVector(body.inputText, dims), inputTextTokenCount: estimateTokens(body.inputText) };
  }
  if (/cohere\.embed/.test(modelId)) {
    if (!Array.isArray(body.texts) || body.texts.length === 0) throw invalid('Malformed input request: #: required key [texts] not found');
    if (typeof body.input_type !== 'string') throw invalid('Malformed input request: #: required key [input_type] not found');
    return { id: 'emb-fake', response_type: 'embeddings_floats', texts: body.texts, embeddings: body.texts.map((t: string) => fakeVector(String(t), 1024)) };
  }
  throw invalid(`The provided model identifier is invalid for InvokeModel in this fake: ${modelId}`);
}
