/**
 * The fake provider's Gemini side, in both of its hostings: Vertex AI
 * (`POST /{v1|v1beta1}/projects/{p}/locations/{l}/publishers/google/models/{model}:{method}`,
 * bearer token) and the Gemini API (`POST /{v1|v1beta}/models/{model}:{method}`, key in
 * `x-goog-api-key` or `?key=`). Methods: `generateContent`, `streamGenerateContent` (SSE with
 * `alt=sse`, else one JSON array), and for embeddings `predict` (Vertex) and
 * `batchEmbedContents` / `embedContent` (Gemini API). Bodies are checked as Gemini checks them
 * (roles `user`/`model`, non-empty parts, a function response turn right after its call turn
 * with as many parts).
 */
import { HttpError, estimateTokens, fakeVector, type Json, type Reply, type StreamEvents } from './wire';

/** A Gemini method the fake serves. */
export type GeminiMethod = 'generateContent' | 'streamGenerateContent' | 'predict' | 'batchEmbedContents' | 'embedContent';

/** A Gemini route: which hosting, model and method. */
export interface GeminiRoute {
  hosting: 'vertex' | 'gemini-api';
  model: string;
  method: GeminiMethod;
  project?: string;
  location?: string;
}

/** The route of a Gemini path, or undefined when it is none. */
export function geminiRoute(method: string | undefined, path: string): GeminiRoute | undefined {
  if (method !== 'POST') return undefined;
  const vertex = /^\/(?:v1|v1beta1)\/projects\/([^/]+)\/locations\/([^/]+)\/publishers\/google\/models\/([^/:]+):(\w+)$/.exec(path);
  const m = vertex ?? /^\/(?:v1|v1beta)\/models\/([^/:]+):(\w+)$/.exec(path);
  if (!m) return undefined;
  const name = (vertex ? m[4] : m[2]) as GeminiMethod;
  if (!['generateContent', 'streamGenerateContent', 'predict', 'batchEmbedContents', 'embedContent'].includes(name)) return undefined;
  return vertex
    ? { hosting: 'vertex', project: m[1], location: m[2], model: decodeURIComponent(m[3]!), method: name }
    : { hosting: 'gemini-api', model: decodeURIComponent(m[1]!), method: name };
}

const STATUS_NAMES: Record<number, string> = {
  400: 'INVALID_ARGUMENT',
  401: 'UNAUTHENTICATED',
  403: 'PERMISSION_DENIED',
  404: 'NOT_FOUND',
  429: 'RESOURCE_EXHAUSTED',
  500: 'INTERNAL',
  503: 'UNAVAILABLE',
  504: 'DEADLINE_EXCEEDED',
};

/** Gemini's error body for an error. */
export function geminiErrorBody(err: HttpError): Json {
  return { error: { code: err.status, message: err.message, status: STATUS_NAMES[err.status] ?? 'UNKNOWN' } };
}

/** The status name and message Gemini uses for a status. */
export function geminiStatusError(status: number): [string, string] {
  const messages: Record<number, string> = {
    400: 'Request contains an invalid argument.',
    401: 'Request had invalid authentication credentials.',
    403: 'Permission denied on resource project.',
    404: 'Publisher Model was not found or your project does not have access to it.',
    429: 'Resource exhausted. Please try again later.',
    500: 'Internal error encountered.',
    503: 'The model is overloaded. Please try again later.',
  };
  return [STATUS_NAMES[status] ?? 'UNKNOWN', messages[status] ?? `fake error ${status}`];
}

const invalid = (message: string) => new HttpError(400, 'INVALID_ARGUMENT', message);

/** Validates a generateContent body and returns the canonical form the fake builds replies from. */
export function parseGenerateContent(body: Json | undefined, model: string, stream: boolean): Json {
  if (!body) throw invalid('Invalid JSON payload received.');
  const contents = body.contents;
  if (!Array.isArray(contents) || contents.length === 0) throw invalid('* GenerateContentRequest.contents: contents is not specified');
  contents.forEach((c: Json, i: number) => {
    if (c?.role !== undefined && c.role !== 'user' && c.role !== 'model') throw invalid(`Please use a valid role: user, model. (contents[${i}].role)`);
    if (!Array.isArray(c?.parts) || c.parts.length === 0) throw invalid(`* GenerateContentRequest.contents[${i}].parts: contents.parts must not be empty.`);
    for (const p of c.parts as Json[]) {
      if (!p || typeof p !== 'object') throw invalid(`contents[${i}].parts: must be objects`);
      if (p.inlineData && (typeof p.inlineData.mimeType !== 'string' || typeof p.inlineData.data !== 'string')) throw invalid(`contents[${i}].parts.inline_data: mime_type and data are required`);
      if (p.fileData && (typeof p.fileData.mimeType !== 'string' || typeof p.fileData.fileUri !== 'string')) throw invalid(`contents[${i}].parts.file_data: mime_type and file_uri are required`);
    }
    const responses = (c.parts as Json[]).filter((p) => p.functionResponse).length;
    if (responses > 0) {
      const calls = ((contents[i - 1]?.parts ?? []) as Json[]).filter((p) => p.functionCall).length;
      if (calls === 0) throw invalid('Please ensure that function response turn comes immediately after a function call turn.');
      if (calls !== responses) throw invalid('Please ensure that the number of function response parts is equal to the number of function call parts of the function call turn.');
    }
  });
  const gen = body.generationConfig ?? {};
  if (gen.maxOutputTokens !== undefined && !(Number.isInteger(gen.maxOutputTokens) && gen.maxOutputTokens >= 1)) throw invalid('generation_config.max_output_tokens must be a positive integer');
  if (gen.candidateCount !== undefined && !(Number.isInteger(gen.candidateCount) && gen.candidateCount >= 1 && gen.candidateCount <= 8)) throw invalid('generation_config.candidate_count must be 1..8');
  if (gen.responseSchema !== undefined && gen.responseJsonSchema !== undefined) throw invalid('responseSchema and responseJsonSchema cannot both be set');
  const mode = body.toolConfig?.functionCallingConfig?.mode;
  if (mode !== undefined && !['AUTO', 'ANY', 'NONE', 'VALIDATED', 'MODE_UNSPECIFIED'].includes(mode)) throw invalid(`Invalid value at 'tool_config.function_calling_config.mode' (${String(mode)})`);
  return {
    model,
    messages: contents.map((c: Json) => ({ role: c.role === 'model' ? 'assistant' : 'user', content: c.parts })),
    ...(body.systemInstruction ? { system: body.systemInstruction.parts ?? [] } : {}),
    stop_sequences: gen.stopSequences,
    max_tokens: gen.maxOutputTokens,
    candidates: gen.candidateCount ?? 1,
    stream,
  };
}

const finishOf = (r: Reply) => (r.finish === 'length' ? 'MAX_TOKENS' : 'STOP');

function usageOf(r: Reply): Json {
  const thoughts = r.reasoning ? estimateTokens(r.reasoning) : 0;
  return {
    promptTokenCount: r.promptTokens,
    candidatesTokenCount: r.completionTokens,
    totalTokenCount: r.promptTokens + r.completionTokens + thoughts,
    ...(r.cachedTokens ? { cachedContentTokenCount: r.cachedTokens } : {}),
    ...(thoughts ? { thoughtsTokenCount: thoughts } : {}),
  };
}

function answerParts(r: Reply): Json[] {
  const parts: Json[] = [];
  if (r.reasoning) parts.push({ text: r.reasoning, thought: true });
  if (r.toolCalls.length > 0) for (const tc of r.toolCalls) parts.push({ functionCall: { name: tc.name, args: JSON.parse(tc.arguments) } });
  else parts.push({ text: r.pieces.join('') });
  return parts;
}

/** The generateContent answer (`candidates` copies of the reply). */
export function generateContentBody(r: Reply, candidates = 1): Json {
  return {
    candidates: Array.from({ length: candidates }, (_, index) => ({ content: { role: 'model', parts: answerParts(r) }, finishReason: finishOf(r), index })),
    usageMetadata: usageOf(r),
    modelVersion: r.model,
    responseId: r.id,
  };
}

/** The streamGenerateContent chunks of a reply, as SSE (`alt=sse`) events. */
export function generateContentEvents(r: Reply): StreamEvents {
  const ev = (chunk: Json) => `data: ${JSON.stringify({ ...chunk, modelVersion: r.model, responseId: r.id })}\r\n\r\n`;
  const head: string[] = [];
  if (r.reasoning) head.push(ev({ candidates: [{ content: { role: 'model', parts: [{ text: r.reasoning, thought: true }] }, index: 0 }] }));
  const tokens: string[] = [];
  if (r.toolCalls.length > 0) {
    // Gemini sends function calls whole, never in pieces.
    tokens.push(ev({ candidates: [{ content: { role: 'model', parts: r.toolCalls.map((tc) => ({ functionCall: { name: tc.name, args: JSON.parse(tc.arguments) } })) }, index: 0 }] }));
  } else {
    for (const p of r.pieces) tokens.push(ev({ candidates: [{ content: { role: 'model', parts: [{ text: p }] }, index: 0 }] }));
  }
  const tail = [ev({ candidates: [{ content: { role: 'model', parts: [{ text: '' }] }, finishReason: finishOf(r), index: 0 }], usageMetadata: usageOf(r) })];
  return { head, tokens, tail };
}

/** A broken SSE event (invalid JSON). */
export const GEMINI_BROKEN_EVENT = 'data: {"candidates":[{"content":\r\n\r\n';

/** Embeddings: Vertex `predict`, Gemini API `batchEmbedContents` and `embedContent`. */
export function geminiEmbeddings(route: GeminiRoute, body: Json | undefined): Json {
  if (!body) throw invalid('Invalid JSON payload received.');
  if (route.method === 'predict') {
    if (!Array.isArray(body.instances) || body.instances.length === 0) throw invalid('instances: must be a non-empty list');
    const dims = body.parameters?.outputDimensionality ?? 768;
    return {
      predictions: body.instances.map((inst: Json, i: number) => {
        if (typeof inst?.content !== 'string') throw invalid(`instances[${i}].content: must be a string`);
        return { embeddings: { values: fakeVector(inst.content, dims), statistics: { token_count: estimateTokens(inst.content), truncated: false } } };
      }),
      metadata: { billableCharacterCount: body.instances.reduce((n: number, inst: Json) => n + String(inst.content).length, 0) },
    };
  }
  const one = (req: Json, i: number) => {
    const text = Array.isArray(req?.content?.parts) ? req.content.parts.map((p: Json) => p.text ?? '').join('') : undefined;
    if (typeof text !== 'string') throw invalid(`requests[${i}].content: parts are required`);
    return { values: fakeVector(text, req.outputDimensionality ?? 768) };
  };
  if (route.method === 'embedContent') return { embedding: one(body, 0) };
  if (!Array.isArray(body.requests) || body.requests.length === 0) throw invalid('requests: must be a non-empty list');
  return { embeddings: body.requests.map(one) };
}
