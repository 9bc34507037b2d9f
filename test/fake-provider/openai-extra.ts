/**
 * The fake provider's OpenAI Embeddings and Responses APIs: request checks as the real API
 * makes them (a 400 naming the field), deterministic answers, and the Responses API's typed
 * stream events. The server routes to them and applies the behaviour plan's faults the same way
 * as for chat (`api: 'openai'`).
 */
import { estimateTokens, fakeVector } from './wire';

type Json = Record<string, any>;

/** A request the real API would refuse: status, message and the field it names. */
export class FakeRequestError extends Error {
  constructor(
    readonly param: string | null,
    message: string,
    readonly status = 400,
  ) {
    super(message);
  }
}

/** Dimensions of a fake vector when the request names none (text-embedding-3-small's). */
export const FAKE_EMBEDDING_DIMENSIONS = 1536;

function inputsOf(input: unknown): Array<string | number[]> {
  const bad = () => new FakeRequestError('input', "'input' must be a non-empty string, array of strings, array of tokens or array of token arrays.");
  if (typeof input === 'string') {
    if (input.length === 0) throw bad();
    return [input];
  }
  if (!Array.isArray(input) || input.length === 0) throw bad();
  if (input.every((x) => typeof x === 'number' && Number.isInteger(x))) return [input as number[]];
  if (input.every((x) => typeof x === 'string' && x.length > 0)) return input as string[];
  if (input.every((x) => Array.isArray(x) && x.length > 0 && x.every((n) => Number.isInteger(n)))) return input as number[][];
  throw bad();
}

/** The answer of `POST /v1/embeddings` (throws {@link FakeRequestError} for a request OpenAI refuses). */
export function fakeEmbeddings(body: Json | undefined): string {
  if (!body) throw new FakeRequestError(null, 'We could not parse the JSON body of your request.');
  if (typeof body.model !== 'string' || body.model.length === 0) throw new FakeRequestError('model', 'you must provide a model parameter');
  const inputs = inputsOf(body.input);
  if (inputs.length > 2048) throw new FakeRequestError('input', "'input' must have at most 2048 elements.");
  const format = body.encoding_format ?? 'float';
  if (format !== 'float' && format !== 'base64') throw new FakeRequestError('encoding_format', "Invalid value for 'encoding_format': must be 'float' or 'base64'.");
  const dims = body.dimensions ?? FAKE_EMBEDDING_DIMENSIONS;
  if (!Number.isInteger(dims) || dims < 1 || dims > FAKE_EMBEDDING_DIMENSIONS) throw new FakeRequestError('dimensions', `Invalid 'dimensions': must be an integer from 1 to ${FAKE_EMBEDDING_DIMENSIONS}.`);
  let tokens = 0;
  const data = inputs.map((input, index) => {
    tokens += typeof input === 'string' ? estimateTokens(input) : input.length;
    const vector = fakeVector(input, dims);
    if (format === 'float') return { object: 'embedding', index, embedding: vector };
    const buf = Buffer.allocUnsafe(dims * 4);
    for (let i = 0; i < dims; i++) buf.writeFloatLE(vector[i], i * 4);
    return { object: 'embedding', index, embedding: buf.toString('base64') };
  });
  return JSON.stringify({ object: 'list', data, model: body.model, usage: { prompt_tokens: tokens, total_tokens: tokens } });
}

/** The text of a Responses API `input`: a string, or the text parts of its last user item. */
function inputText(input: unknown): string {
  if (typeof input === 'string') return input;
  if (!Array.isArray(input)) return '';
  for (let i = input.length - 1; i >= 0; i--) {
    const item = input[i];
    if (item?.role !== 'user') continue;
    if (typeof item.content === 'string') return item.content;
    if (Array.isArray(item.content)) return item.content.map((p: Json) => (typeof p?.text === 'string' ? p.text : '')).join('');
  }
  return '';
}

/** A Responses API answer: the response object and its stream of typed events. */
export interface FakeResponse {
  /** The JSON body of a plain answer. */
  plain: string;
  /** SSE events: before the text, one per text delta, after it (the shape the fault injection cuts). */
  events: { head: string[]; tokens: string[]; tail: string[] };
}

/** The answer of `POST /v1/responses` (throws {@link FakeRequestError} for a request OpenAI refuses). */
export function fakeResponse(body: Json | undefined, id: string, replyText: string | undefined): FakeResponse {
  if (!body) throw new FakeRequestError(null, 'We could not parse the JSON body of your request.');
  if (typeof body.model !== 'string' || body.model.length === 0) throw new FakeRequestError('model', "Missing required parameter: 'model'.");
  if (body.input === undefined) throw new FakeRequestError('input', "Missing required parameter: 'input'.");
  if (body.max_output_tokens !== undefined && !(Number.isInteger(body.max_output_tokens) && body.max_output_tokens >= 16)) {
    throw new FakeRequestError('max_output_tokens', "Invalid 'max_output_tokens': integer below minimum value. Expected a value >= 16.");
  }
  const prompt = inputText(body.input);
  const text = replyText ?? `echo: ${prompt}`;
  const pieces = text.match(/\s*\S+/g) ?? [];
  const inputTokens = estimateTokens(JSON.stringify(body.input)) + (typeof body.instructions === 'string' ? estimateTokens(body.instructions) : 0);
  const outputTokens = pieces.length;
  const created = Math.floor(Date.now() / 1000);
  const msgId = `msg_${id}`;
  const base = {
    id: `resp_${id}`,
    object: 'response',
    created_at: created,
    model: body.model,
    instructions: body.instructions ?? null,
    max_output_tokens: body.max_output_tokens ?? null,
    parallel_tool_calls: true,
    previous_response_id: body.previous_response_id ?? null,
    temperature: body.temperature ?? 1,
    tool_choice: 'auto',
    tools: [],
    top_p: 1,
    truncation: 'disabled',
    metadata: body.metadata ?? {},
    error: null,
    incomplete_details: null,
  };
  const part = { type: 'output_text', text, annotations: [] };
  const item = { id: msgId, type: 'message', status: 'completed', role: 'assistant', content: [part] };
  const usage = { input_tokens: inputTokens, input_tokens_details: { cached_tokens: 0 }, output_tokens: outputTokens, output_tokens_details: { reasoning_tokens: 0 }, total_tokens: inputTokens + outputTokens };
  const done = { ...base, status: 'completed', output: [item], usage };
  let seq = 0;
  const event = (type: string, fields: Json) => `event: ${type}\ndata: ${JSON.stringify({ type, sequence_number: seq++, ...fields })}\n\n`;
  const pending = { ...base, status: 'in_progress', output: [], usage: null };
  const head = [
    event('response.created', { response: pending }),
    event('response.in_progress', { response: pending }),
    event('response.output_item.added', { output_index: 0, item: { ...item, status: 'in_progress', content: [] } }),
    event('response.content_part.added', { item_id: msgId, output_index: 0, content_index: 0, part: { ...part, text: '' } }),
  ];
  const tokens = pieces.map((delta) => event('response.output_text.delta', { item_id: msgId, output_index: 0, content_index: 0, delta, logprobs: [] }));
  const tail = [
    event('response.output_text.done', { item_id: msgId, output_index: 0, content_index: 0, text, logprobs: [] }),
    event('response.content_part.done', { item_id: msgId, output_index: 0, content_index: 0, part }),
    event('response.output_item.done', { output_index: 0, item }),
    event('response.completed', { response: done }),
  ];
  return { plain: JSON.stringify(done), events: { head, tokens, tail } };
}
