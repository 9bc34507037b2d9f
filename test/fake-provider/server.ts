/**
 * The fake LLM provider: a real HTTP server (node:http) that speaks the OpenAI Chat Completions,
 * Embeddings and Responses APIs (chat and embeddings also on Azure OpenAI's deployment paths, the
 * Responses API on Azure's v1 path), the Anthropic Messages API, Bedrock Converse
 * (bedrock.ts) and Gemini (gemini.ts), streaming included, and misbehaves on demand (latency,
 * 429 with Retry-After, 5xx, 529, connection resets, stalled streams, malformed bodies).
 *
 * Tests embed it with {@link startFakeProvider}; the benchmark and people run it with
 * `tsx test/fake-provider/main.ts --port 9100` and steer it through `/_fake/*`. It is test
 * support only and never a provider in production. See docs/fake-provider.md.
 */
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Behavior, PlanError, validatePlan, type BehaviorPlan, type FakeApi, type Fault, type ReplyOptions } from './behavior';
import { FakeRequestError, fakeEmbeddings, fakeResponse } from './openai-extra';
import { bedrockRoute, bedrockStatusError, brokenFrame, checkBedrockAuth, converseBody, converseStreamEvents, exceptionFrame, invokeEmbeddings, parseConverse } from './bedrock';
import { GEMINI_BROKEN_EVENT, geminiEmbeddings, geminiErrorBody, geminiRoute, geminiStatusError, generateContentBody, generateContentEvents, parseGenerateContent, type GeminiRoute } from './gemini';
import { HttpError, THINKING_FIRST_MESSAGE, estimateTokens, fakeVector, joinChunks, thinkingSignature, type Json, type Reply, type StreamEvents, type WireChunk } from './wire';

export * from './behavior';

/** Options of {@link startFakeProvider}. */
export interface FakeProviderOptions {
  /** TCP port to listen on. @default 0 (a free port, see `FakeProvider.port`) */
  port?: number;
  /** Address to listen on. @default '127.0.0.1' */
  host?: string;
  /**
   * The key the OpenAI side expects as `Authorization: Bearer <key>`; requests without it get
   * a 401 like the real API.
   * @default unset: the OpenAI side accepts any or no key (like vLLM or Ollama)
   */
  apiKey?: string;
  /**
   * The key the Anthropic side expects in `x-api-key` (or as `Authorization: Bearer`, which
   * recent SDKs send). A key is always required, like the real API (401 when missing).
   * @default unset: any non-empty `x-api-key` is accepted
   */
  anthropicApiKey?: string;
  /**
   * The key Azure OpenAI paths expect in the `api-key` header; a bearer token the fake issued at
   * its Entra ID token endpoint is accepted instead. Without one or the other: 401.
   * @default unset: any non-empty `api-key`, or a token the fake issued
   */
  azureApiKey?: string;
  /** The access key ID Bedrock requests must be signed with. @default unset: any SigV4 signature for `bedrock` */
  awsAccessKeyId?: string;
  /** The Gemini API key (`x-goog-api-key` or `?key=`). @default unset: any non-empty key */
  geminiApiKey?: string;
  /** The models `GET /v1/models` lists. @default ['gpt-4o-mini', 'claude-haiku-4-5'] */
  models?: string[];
  /** The behaviour to start with. @default {} (every request succeeds) */
  plan?: BehaviorPlan;
  /**
   * How many received requests to keep for `requests` (oldest dropped first); 0 keeps none,
   * which the benchmark uses to keep per-request overhead tiny.
   * @default 1000
   */
  recordRequests?: number;
}

/** A request as the fake received it. */
export interface RecordedRequest {
  method: string;
  path: string;
  /** Header names lower-case, as node:http gives them. */
  headers: Record<string, string | string[] | undefined>;
  /** The parsed JSON body, or the raw text when it did not parse. */
  body: unknown;
  /** Epoch milliseconds. */
  at: number;
  /** The client's port: requests that share it came over one (keep-alive) connection. */
  remotePort: number | undefined;
}

/** Counters since start or the last reset. */
export interface FakeStats {
  /** Requests to the provider APIs (admin calls excluded). */
  requests: number;
  /** Requests not yet answered (or stalled). */
  inFlight: number;
  /** How requests ended: `ok`, `status_429`, `reset`, `stall`, `malformed`, `auth`, `bad_request`, ... */
  outcomes: Record<string, number>;
  /** Requests per model. */
  models: Record<string, number>;
}

/** A running fake provider. */
export interface FakeProvider {
  /** `http://host:port`; the OpenAI base URL is `${url}/v1`, the Anthropic one is `url`. */
  readonly url: string;
  readonly port: number;
  /** Replaces the behaviour plan (validated; throws {@link PlanError} naming the bad field). */
  setBehavior(plan: BehaviorPlan): void;
  /** Back to normal behaviour, and clears recorded requests and stats. */
  reset(): void;
  /** Recorded requests, oldest first. */
  readonly requests: RecordedRequest[];
  readonly stats: FakeStats;
  /** Stops listening and destroys every open connection (stalled ones included). */
  close(): Promise<void>;
}

const DEFAULT_MODELS = ['gpt-4o-mini', 'claude-haiku-4-5'];
const ID_PREFIX = randomBytes(6).toString('hex');
const SSE_HEADERS = { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', connection: 'keep-alive' };

const STREAM_HEADERS: Record<FakeApi, Record<string, string>> = {
  openai: SSE_HEADERS,
  azure: SSE_HEADERS,
  anthropic: SSE_HEADERS,
  gemini: SSE_HEADERS,
  bedrock: { 'content-type': 'application/vnd.amazon.eventstream', 'x-amzn-bedrock-content-type': 'application/json' },
};

/** Whether the canonical body of an API uses Anthropic's names (`system`, `stop_sequences`, `max_tokens`). */
const anthropicLike = (api: FakeApi) => api === 'anthropic' || api === 'bedrock' || api === 'gemini';

/** The text of an OpenAI or Anthropic message content (string, parts or blocks). */
function contentText(content: unknown): string {
  if (typeof content === 'string') return content;
  if (!Array.isArray(content)) return '';
  let out = '';
  for (const part of content) {
    if (part && typeof part === 'object') {
      if (typeof part.text === 'string') out += part.text;
      else if (part.type === 'tool_result') out += contentText(part.content);
      else if (part.type === 'tool_use' && part.input) out += JSON.stringify(part.input);
    }
  }
  return out;
}

function lastUserText(messages: Json[]): string {
  for (let i = messages.length - 1; i >= 0; i--) {
    if (messages[i].role === 'user') return contentText(messages[i].content);
  }
  return '';
}

function promptTokens(messages: Json[], system?: unknown): number {
  let n = 3;
  if (system !== undefined) n += estimateTokens(contentText(system)) + 4;
  for (const m of messages) n += estimateTokens(contentText(m.content)) + 4;
  return n;
}

function asStopList(stop: unknown): string[] {
  if (typeof stop === 'string') return [stop];
  if (Array.isArray(stop)) return stop.filter((s): s is string => typeof s === 'string' && s.length > 0);
  return [];
}

const sleepNever = new Promise<never>(() => undefined);

export async function startFakeProvider(options: FakeProviderOptions = {}): Promise<FakeProvider> {
  const host = options.host ?? '127.0.0.1';
  const models = options.models ?? DEFAULT_MODELS;
  const recordLimit = options.recordRequests ?? 1000;
  let behavior = new Behavior(options.plan ? validatePlan(options.plan) : {});
  let requests: RecordedRequest[] = [];
  let stats: FakeStats = { requests: 0, inFlight: 0, outcomes: {}, models: {} };
  let counter = 0;
  const timers = new Set<NodeJS.Timeout>();
  let closed = false;

  const nextId = () => `${ID_PREFIX}${(++counter).toString(36)}`;

  const sleep = (ms: number): Promise<void> => {
    if (closed) return sleepNever;
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        timers.delete(t);
        resolve();
      }, ms);
      timers.add(t);
    });
  };

  const count = (outcome: string) => {
    stats.outcomes[outcome] = (stats.outcomes[outcome] ?? 0) + 1;
  };

  const record = (req: IncomingMessage, path: string, raw: string, body: unknown) => {
    if (recordLimit <= 0) return;
    requests.push({ method: req.method ?? 'GET', path, headers: { ...req.headers }, body: body ?? raw, at: Date.now(), remotePort: req.socket.remotePort });
    if (requests.length > recordLimit) requests.splice(0, requests.length - recordLimit);
  };

  // ---- wire helpers ---------------------------------------------------------------------------

  const sendJson = (res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) => {
    const text = JSON.stringify(body);
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...headers });
    res.end(text);
  };

  const sendError = (res: ServerResponse, api: FakeApi, err: HttpError, headers: Record<string, string> = {}) => {
    switch (api) {
      case 'anthropic':
        return sendJson(res, err.status, { type: 'error', error: { type: err.type, message: err.message } }, headers);
      case 'bedrock':
        // The AWS SDK reads the error's type from this header (restJson1).
        return sendJson(res, err.status, { message: err.message }, { 'x-amzn-errortype': `${err.type}:http://internal.amazon.com/coral/com.amazon.bedrock/`, 'x-amzn-requestid': nextId(), ...headers });
      case 'gemini':
        return sendJson(res, err.status, geminiErrorBody(err), headers);
      case 'azure':
        return sendJson(res, err.status, { error: { code: err.code ?? String(err.status), message: err.message, type: err.type, param: err.param } }, headers);
      default:
        return sendJson(res, err.status, { error: { message: err.message, type: err.type, param: err.param, code: err.code } }, headers);
    }
  };

  // ---- replies --------------------------------------------------------------------------------

  const buildReply = (api: FakeApi, body: Json, options: ReplyOptions): Reply => {
    let reply = buildPlainReply(api, body, options);
    const thinking = body.thinking as { type?: string } | undefined;
    if ((api === 'anthropic' || api === 'bedrock') && thinking?.type === 'enabled') {
      const text = `Thinking about: ${lastUserText(body.messages as Json[])}`;
      // Bedrock renders it as reasoningContent (bedrock.ts), signed the same way.
      reply = api === 'anthropic' ? { ...reply, thinking: { text, signature: thinkingSignature(text) } } : { ...reply, reasoning: reply.reasoning ?? text };
      reply.completionTokens += estimateTokens(text);
    }
    const cachedTokens = Math.min(reply.promptTokens, options.cachedTokens ?? 0);
    const cacheWriteTokens = Math.min(reply.promptTokens - cachedTokens, options.cacheWriteTokens ?? 0);
    return cachedTokens > 0 || cacheWriteTokens > 0 ? { ...reply, cachedTokens, cacheWriteTokens } : reply;
  };

  const buildPlainReply = (api: FakeApi, body: Json, options: ReplyOptions): Reply => {
    const messages = body.messages as Json[];
    const id = api === 'anthropic' ? `msg_${nextId()}` : `chatcmpl-${nextId()}`;
    const prompt = promptTokens(messages, anthropicLike(api) ? body.system : undefined);
    const tokenDelayMs = options.tokenDelayMs ?? 0;
    const omitUsage = options.omitUsage ?? false;
    const reasoning = options.reasoning !== undefined ? { reasoning: options.reasoning } : {};
    const calls = options.toolCalls ?? (options.toolCall ? [options.toolCall] : []);
    if (calls.length > 0) {
      const prefix = api === 'anthropic' ? 'toolu_' : api === 'bedrock' ? 'tooluse_' : 'call_';
      const toolCalls = calls.map((c) => ({ id: `${prefix}${nextId()}`, name: c.name, arguments: JSON.stringify(c.arguments) }));
      return {
        id,
        model: body.model,
        pieces: [],
        toolCalls,
        ...reasoning,
        finish: 'tool',
        stopSequence: null,
        promptTokens: prompt,
        completionTokens: toolCalls.reduce((n, tc) => n + estimateTokens(tc.arguments) + 8, 0),
        tokenDelayMs,
        omitUsage,
      };
    }
    let text = options.text ?? `echo: ${lastUserText(messages)}`;
    let pieces: string[] = text.match(/\s*\S+\s*$|\s*\S+/g) ?? [];
    if (options.tokens !== undefined) {
      const base = pieces.length > 0 ? pieces : ['lorem'];
      pieces = Array.from({ length: options.tokens }, (_, i) => (i > 0 && !/^\s/.test(base[i % base.length]) ? ' ' : '') + base[i % base.length]);
      text = pieces.join('');
    }
    let finish: Reply['finish'] = 'stop';
    let stopSequence: string | null = null;
    const stops = anthropicLike(api) ? asStopList(body.stop_sequences) : asStopList(body.stop);
    let cut = -1;
    for (const s of stops) {
      const at = text.indexOf(s);
      if (at >= 0 && (cut < 0 || at < cut)) {
        cut = at;
        stopSequence = s;
      }
    }
    if (cut >= 0) {
      text = text.slice(0, cut);
      pieces = text.match(/\s*\S+\s*$|\s*\S+/g) ?? [];
      finish = anthropicLike(api) ? 'stop_sequence' : 'stop';
    }
    const maxTokens = anthropicLike(api) ? body.max_tokens : (body.max_completion_tokens ?? body.max_tokens);
    if (typeof maxTokens === 'number' && pieces.length > maxTokens) {
      pieces = pieces.slice(0, Math.max(0, maxTokens));
      finish = 'length';
      stopSequence = null;
    }
    return { id, model: body.model, pieces, toolCalls: [], ...reasoning, finish, stopSequence, promptTokens: prompt, completionTokens: pieces.length, tokenDelayMs, omitUsage };
  };

  const openaiFinish = (r: Reply) => (r.finish === 'tool' ? 'tool_calls' : r.finish === 'length' ? 'length' : 'stop');
  const anthropicStop = (r: Reply) => (r.finish === 'tool' ? 'tool_use' : r.finish === 'length' ? 'max_tokens' : r.finish === 'stop_sequence' ? 'stop_sequence' : 'end_turn');
  const openaiUsage = (r: Reply) => ({
    prompt_tokens: r.promptTokens,
    completion_tokens: r.completionTokens,
    total_tokens: r.promptTokens + r.completionTokens,
    prompt_tokens_details: { cached_tokens: r.cachedTokens ?? 0, audio_tokens: 0 },
    completion_tokens_details: { reasoning_tokens: 0, audio_tokens: 0, accepted_prediction_tokens: 0, rejected_prediction_tokens: 0 },
  });

  const openaiCompletion = (r: Reply, created: number) => ({
    id: r.id,
    object: 'chat.completion',
    created,
    model: r.model,
    choices: [
      {
        index: 0,
        message:
          r.toolCalls.length > 0
            ? { role: 'assistant', content: null, refusal: null, tool_calls: r.toolCalls.map((tc) => ({ id: tc.id, type: 'function', function: { name: tc.name, arguments: tc.arguments } })) }
            : { role: 'assistant', content: r.pieces.join(''), refusal: null },
        logprobs: null,
        finish_reason: openaiFinish(r),
      },
    ],
    ...(r.omitUsage ? {} : { usage: openaiUsage(r) }),
    service_tier: 'default',
    system_fingerprint: 'fp_fake',
  });

  const anthropicMessage = (r: Reply) => ({
    id: r.id,
    type: 'message',
    role: 'assistant',
    model: r.model,
    content: [
      ...(r.thinking ? [{ type: 'thinking', thinking: r.thinking.text, signature: r.thinking.signature }] : []),
      ...(r.toolCalls.length > 0 ? r.toolCalls.map((tc) => ({ type: 'tool_use', id: tc.id, name: tc.name, input: JSON.parse(tc.arguments) })) : [{ type: 'text', text: r.pieces.join('') }]),
    ],
    stop_reason: anthropicStop(r),
    stop_sequence: r.stopSequence,
    usage: {
      input_tokens: r.promptTokens - (r.cachedTokens ?? 0) - (r.cacheWriteTokens ?? 0),
      output_tokens: r.completionTokens,
      cache_creation_input_tokens: r.cacheWriteTokens ?? 0,
      cache_read_input_tokens: r.cachedTokens ?? 0,
    },
  });

  const openaiEvents = (r: Reply, created: number, includeUsage: boolean): StreamEvents => {
    const usageField = includeUsage ? ',"usage":null' : '';
    const prefix = `data: {"id":"${r.id}","object":"chat.completion.chunk","created":${created},"model":${JSON.stringify(r.model)},"system_fingerprint":"fp_fake","choices":[{"index":0,"delta":`;
    const chunk = (delta: string, finish = 'null') => `${prefix}${delta},"logprobs":null,"finish_reason":${finish}}]${usageField}}\n\n`;
    const head = [chunk('{"role":"assistant","content":"","refusal":null}')];
    const tokens: string[] = [];
    if (r.toolCalls.length > 0) {
      r.toolCalls.forEach((tc, index) => {
        const start = chunk(JSON.stringify({ tool_calls: [{ index, id: tc.id, type: 'function', function: { name: tc.name, arguments: '' } }] }));
        if (index === 0) head.push(start);
        else tokens.push(start);
        const step = Math.max(1, Math.ceil(tc.arguments.length / 3));
        for (let i = 0; i < tc.arguments.length; i += step) {
          tokens.push(chunk(JSON.stringify({ tool_calls: [{ index, function: { arguments: tc.arguments.slice(i, i + step) } }] })));
        }
      });
    } else {
      for (const p of r.pieces) tokens.push(chunk(`{"content":${JSON.stringify(p)}}`));
    }
    const tail = [chunk('{}', `"${openaiFinish(r)}"`)];
    if (includeUsage) {
      tail.push(
        `data: {"id":"${r.id}","object":"chat.completion.chunk","created":${created},"model":${JSON.stringify(r.model)},"system_fingerprint":"fp_fake","choices":[],"usage":${JSON.stringify(openaiUsage(r))}}\n\n`,
      );
    }
    tail.push('data: [DONE]\n\n');
    return { head, tokens, tail };
  };

  const anthropicEvents = (r: Reply): StreamEvents => {
    const ev = (type: string, data: unknown) => `event: ${type}\ndata: ${JSON.stringify(data)}\n\n`;
    const message = { ...anthropicMessage(r), content: [], stop_reason: null, stop_sequence: null };
    message.usage = { ...message.usage, output_tokens: 1 };
    const first = r.toolCalls[0];
    // With thinking, the answer's block comes second.
    const at = r.thinking ? 1 : 0;
    const head = [ev('message_start', { type: 'message_start', message })];
    if (r.thinking) {
      head.push(
        ev('content_block_start', { type: 'content_block_start', index: 0, content_block: { type: 'thinking', thinking: '', signature: '' } }),
        ev('content_block_delta', { type: 'content_block_delta', index: 0, delta: { type: 'thinking_delta', thinking: r.thinking.text } }),
        ev('content_block_delta', { type: 'content_block_delta', index: 0, delta: { type: 'signature_delta', signature: r.thinking.signature } }),
        ev('content_block_stop', { type: 'content_block_stop', index: 0 }),
      );
    }
    head.push(
      ev('content_block_start', {
        type: 'content_block_start',
        index: at,
        content_block: first ? { type: 'tool_use', id: first.id, name: first.name, input: {} } : { type: 'text', text: '' },
      }),
      ev('ping', { type: 'ping' }),
    );
    const tokens: string[] = [];
    if (first) {
      r.toolCalls.forEach((tc, i) => {
        const index = at + i;
        if (i > 0) {
          tokens.push(ev('content_block_stop', { type: 'content_block_stop', index: index - 1 }));
          tokens.push(ev('content_block_start', { type: 'content_block_start', index, content_block: { type: 'tool_use', id: tc.id, name: tc.name, input: {} } }));
        }
        const args = tc.arguments;
        const step = Math.max(1, Math.ceil(args.length / 3));
        for (let j = 0; j < args.length; j += step) {
          tokens.push(ev('content_block_delta', { type: 'content_block_delta', index, delta: { type: 'input_json_delta', partial_json: args.slice(j, j + step) } }));
        }
      });
    } else {
      for (const p of r.pieces) tokens.push(ev('content_block_delta', { type: 'content_block_delta', index: at, delta: { type: 'text_delta', text: p } }));
    }
    const tail = [
      ev('content_block_stop', { type: 'content_block_stop', index: at + Math.max(0, r.toolCalls.length - 1) }),
      ev('message_delta', { type: 'message_delta', delta: { stop_reason: anthropicStop(r), stop_sequence: r.stopSequence }, usage: { output_tokens: r.completionTokens } }),
      ev('message_stop', { type: 'message_stop' }),
    ];
    return { head, tokens, tail };
  };

  // ---- faults ---------------------------------------------------------------------------------

  const brokenEvent = (api: FakeApi): WireChunk => {
    if (api === 'bedrock') return brokenFrame();
    if (api === 'gemini') return GEMINI_BROKEN_EVENT;
    return api === 'anthropic' ? 'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":\n\n' : 'data: {"id":"chatcmpl-broken","choices":[{"delta":{"content":\n\n';
  };

  /** The error event each API sends mid-stream. */
  const streamError = (api: FakeApi, message: (m: string) => string): WireChunk => {
    switch (api) {
      case 'anthropic':
        return `event: error\ndata: ${JSON.stringify({ type: 'error', error: { type: 'overloaded_error', message: message('Overloaded') } })}\n\n`;
      case 'bedrock':
        return exceptionFrame('serviceUnavailableException', message('Bedrock is unable to process your request.'));
      case 'gemini':
        return `data: ${JSON.stringify(geminiErrorBody(new HttpError(503, 'UNAVAILABLE', message('The model is overloaded. Please try again later.'))))}\r\n\r\n`;
      default:
        return `data: ${JSON.stringify({ error: { message: message('The server had an error while processing your request.'), type: 'server_error', param: null, code: null } })}\n\n`;
    }
  };

  /** Writes `data`, then destroys the socket once it is flushed. */
  const writeThenReset = (res: ServerResponse, data: string | Buffer) => {
    res.write(data, () => res.socket?.destroy());
  };

  /** Applies a fault; resolves when the response is finished (or abandoned). */
  const applyFault = async (
    res: ServerResponse,
    api: FakeApi,
    fault: Fault,
    stream: boolean,
    events: () => StreamEvents,
    plainBody: () => string,
    requestHeaders: IncomingMessage['headers'],
  ): Promise<string> => {
    const echo = (message: string) => ('echoRequest' in fault && fault.echoRequest ? `${message}; request was: ${JSON.stringify(requestHeaders)}` : message);
    switch (fault.type) {
      case 'status': {
        const headers: Record<string, string> = {};
        if (fault.retryAfter !== undefined) headers['retry-after'] = String(fault.retryAfter);
        if (fault.retryAfterMs !== undefined) headers['retry-after-ms'] = String(fault.retryAfterMs);
        const [type, message] = statusError(api, fault.status);
        sendError(res, api, new HttpError(fault.status, type, echo(fault.message ?? message), null, api === 'azure' ? String(fault.status) : null), headers);
        return `status_${fault.status}`;
      }
      case 'reset': {
        if (!fault.afterHeaders) {
          res.socket?.destroy();
          return 'reset';
        }
        if (stream) {
          const ev = events();
          res.writeHead(200, STREAM_HEADERS[api]);
          writeThenReset(res, joinChunks(ev.head, ev.tokens.slice(0, 1)));
        } else {
          const body = plainBody();
          res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
          writeThenReset(res, body.slice(0, Math.floor(body.length / 2)));
        }
        return 'reset';
      }
      case 'stall': {
        const beforeHeaders = fault.beforeHeaders ?? !stream;
        if (beforeHeaders) {
          // Never answer; the connection stays open until the client gives up or we close.
          return 'stall';
        }
        if (stream) {
          const ev = events();
          res.writeHead(200, STREAM_HEADERS[api]);
          res.write(joinChunks(ev.head, ev.tokens.slice(0, fault.afterChunks ?? 2)));
        } else {
          const body = plainBody();
          res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
          res.write(body.slice(0, Math.floor(body.length / 2)));
        }
        return 'stall';
      }
      case 'error_event': {
        if (!stream) {
          const [type, message] = statusError(api, 500);
          sendError(res, api, new HttpError(500, type, echo(message)));
          return 'status_500';
        }
        const ev = events();
        res.writeHead(200, STREAM_HEADERS[api]);
        res.end(joinChunks(ev.head, ev.tokens.slice(0, fault.afterChunks ?? 1), [streamError(api, echo)]));
        return 'error_event';
      }
      case 'malformed': {
        if (stream) {
          const ev = events();
          res.writeHead(200, STREAM_HEADERS[api]);
          res.end(joinChunks(ev.head, ev.tokens.slice(0, 1), [brokenEvent(api)], ev.tail));
        } else {
          const body = plainBody();
          const broken = body.slice(0, Math.floor(body.length / 2));
          res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(broken) });
          res.end(broken);
        }
        return 'malformed';
      }
    }
  };

  /**
   * Writes `text` so that every multi-byte character is cut after its first byte: each piece is
   * written on its own, with Nagle off, and the next only once the previous one left (plus 5 ms),
   * so the client reads the halves as separate chunks (a reader slower than that may still join
   * some of them).
   */
  const writeSplit = async (res: ServerResponse, text: string) => {
    const bytes = Buffer.from(text, 'utf8');
    let from = 0;
    for (let i = 0; i < bytes.length; i++) {
      if (bytes[i]! < 0xc0) continue; // not the lead byte of a multi-byte character
      await new Promise<void>((resolve) => res.write(bytes.subarray(from, i + 1), () => resolve()));
      // Long enough for a reader under load to take the piece before the next one arrives.
      await sleep(5);
      if (res.destroyed) return;
      from = i + 1;
    }
    res.write(bytes.subarray(from));
  };

  const writeStream = async (res: ServerResponse, api: FakeApi, ev: StreamEvents, delayMs: number, splitMultibyte = false) => {
    res.writeHead(200, STREAM_HEADERS[api]);
    const whole = joinChunks(ev.head, ev.tokens, ev.tail);
    // Binary frames (Bedrock) are split by the frame decoder anyway; only text is cut here.
    if (splitMultibyte && typeof whole === 'string') {
      res.socket?.setNoDelay(true);
      await writeSplit(res, whole);
      res.end();
      return;
    }
    if (delayMs <= 0) {
      res.end(whole);
      return;
    }
    res.write(joinChunks(ev.head));
    for (const t of ev.tokens) {
      await sleep(delayMs);
      if (res.destroyed) return;
      res.write(t);
    }
    res.end(joinChunks(ev.tail));
  };

  // ---- the provider APIs ----------------------------------------------------------------------

  /** Tokens the fake issued (Entra ID, GCE metadata): what the Azure and Vertex sides accept as bearer tokens. */
  const issuedTokens = new Set<string>();

  /** Validates a request of any API and returns the canonical body replies are built from. */
  const parseRequest = (route: ApiRoute, req: IncomingMessage, body: Json | undefined): Json => {
    switch (route.api) {
      case 'openai':
        checkOpenAI(req, body, options.apiKey);
        return body!;
      case 'anthropic':
        checkAnthropic(req, body, options.anthropicApiKey);
        return body!;
      case 'azure': {
        checkAzure(req, route, options.azureApiKey, issuedTokens);
        // Azure takes the model from the deployment; a body's `model` is ignored.
        const withModel = body && route.deployment ? { ...body, model: route.deployment } : body;
        checkOpenAI(req, withModel, undefined);
        return withModel!;
      }
      case 'bedrock':
        checkBedrockAuth(req, options.awsAccessKeyId);
        return parseConverse(body, route.bedrock!.modelId, route.bedrock!.op === 'converse-stream');
      case 'gemini':
        checkGeminiAuth(req, route, options.geminiApiKey, issuedTokens);
        return parseGenerateContent(body, route.gemini!.model, route.gemini!.method === 'streamGenerateContent');
    }
  };

  const parseBody = (raw: string): Json | undefined => {
    try {
      const parsed: unknown = raw.length > 0 ? JSON.parse(raw) : undefined;
      return parsed && typeof parsed === 'object' && !Array.isArray(parsed) ? (parsed as Json) : undefined;
    } catch {
      return undefined;
    }
  };

  const REQUEST_ID_HEADERS: Record<FakeApi, string> = { openai: 'x-request-id', azure: 'apim-request-id', anthropic: 'request-id', bedrock: 'x-amzn-requestid', gemini: 'x-request-id' };

  const handleCompletion = async (route: ApiRoute, req: IncomingMessage, res: ServerResponse, raw: string, path: string) => {
    const api = route.api;
    stats.requests++;
    const body = parseBody(raw);
    record(req, path, raw, body);
    let b: Json;
    try {
      b = parseRequest(route, req, body);
    } catch (err) {
      const e = err as HttpError;
      sendError(res, api, e, e.status === 401 && api === 'openai' ? { 'www-authenticate': 'Bearer' } : {});
      count(e.status === 401 || e.status === 403 ? 'auth' : 'bad_request');
      return;
    }
    const model: string = b.model;
    stats.models[model] = (stats.models[model] ?? 0) + 1;
    const stream = b.stream === true;
    const decision = behavior.decide(api, model, stream);
    if (decision.latencyMs > 0) {
      await sleep(decision.latencyMs);
      if (res.destroyed) return count('client_gone');
    }
    const created = Math.floor(Date.now() / 1000);
    const reply = buildReply(api, b, decision.reply);
    const openaiWire = api === 'openai' || api === 'azure';
    const includeUsage = openaiWire && b.stream_options?.include_usage === true && !reply.omitUsage;
    const events = (): StreamEvents => {
      if (openaiWire) return openaiEvents(reply, created, includeUsage);
      if (api === 'bedrock') return converseStreamEvents(reply);
      if (api === 'gemini') return generateContentEvents(reply);
      return anthropicEvents(reply);
    };
    const plainBody = () => {
      if (openaiWire) return JSON.stringify(openaiCompletion(reply, created));
      if (api === 'bedrock') return JSON.stringify(converseBody(reply));
      if (api === 'gemini') return JSON.stringify(generateContentBody(reply, b.candidates));
      return JSON.stringify(anthropicMessage(reply));
    };
    res.setHeader(REQUEST_ID_HEADERS[api], `req_${reply.id}`);
    if (decision.fault) {
      count(await applyFault(res, api, decision.fault, stream, events, plainBody, req.headers));
      return;
    }
    if (stream && api === 'gemini' && route.query.get('alt') !== 'sse') {
      // Without alt=sse Gemini streams one JSON array of the same chunks.
      const ev = events();
      const chunks = [...ev.head, ...ev.tokens, ...ev.tail].map((c) => JSON.parse(String(c).replace(/^data: /, '')) as unknown);
      sendJson(res, 200, chunks);
    } else if (stream) {
      await writeStream(res, api, events(), reply.tokenDelayMs, decision.reply.splitMultibyte === true);
    } else {
      const text = plainBody();
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
      res.end(text);
    }
    count('ok');
  };

  /** Embeddings on the Azure, Bedrock (InvokeModel) and Gemini paths. */
  const handleEmbeddings = async (route: ApiRoute, req: IncomingMessage, res: ServerResponse, raw: string, path: string) => {
    const api = route.api;
    stats.requests++;
    const body = parseBody(raw);
    record(req, path, raw, body);
    let answer: Json;
    let model: string;
    try {
      if (api === 'azure') {
        checkAzure(req, route, options.azureApiKey, issuedTokens);
        model = route.deployment!;
        answer = azureEmbeddings(model, body);
      } else if (api === 'bedrock') {
        checkBedrockAuth(req, options.awsAccessKeyId);
        model = route.bedrock!.modelId;
        answer = invokeEmbeddings(model, body);
      } else {
        checkGeminiAuth(req, route, options.geminiApiKey, issuedTokens);
        model = route.gemini!.model;
        answer = geminiEmbeddings(route.gemini!, body);
      }
    } catch (err) {
      const e = err as HttpError;
      sendError(res, api, e);
      count(e.status === 401 || e.status === 403 ? 'auth' : 'bad_request');
      return;
    }
    stats.models[model] = (stats.models[model] ?? 0) + 1;
    const decision = behavior.decide(api, model, false);
    if (decision.latencyMs > 0) {
      await sleep(decision.latencyMs);
      if (res.destroyed) return count('client_gone');
    }
    const text = JSON.stringify(answer);
    if (decision.fault) {
      const none = (): StreamEvents => ({ head: [], tokens: [], tail: [] });
      count(await applyFault(res, api, decision.fault, false, none, () => text, req.headers));
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
    res.end(text);
    count('ok');
  };

  /**
   * The identity endpoints the cloud adapters get tokens from: Microsoft Entra ID's token
   * endpoint (client credentials with a federated JWT assertion, as AKS workload identity does),
   * the GCE metadata server (GKE workload identity), each issuing tokens the Azure and Vertex
   * sides then accept, and AWS STS's AssumeRoleWithWebIdentity (IRSA; point
   * `AWS_ENDPOINT_URL_STS` at the fake).
   */
  const handleIdentity = (req: IncomingMessage, res: ServerResponse, path: string, raw: string): boolean => {
    if (req.method === 'POST' && /^\/[^/]+\/oauth2\/v2\.0\/token$/.test(path)) {
      record(req, path, raw, undefined);
      const form = new URLSearchParams(raw);
      if (form.get('grant_type') !== 'client_credentials' || form.get('client_assertion_type') !== 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer' || !form.get('client_assertion') || !form.get('client_id') || !form.get('scope')) {
        sendJson(res, 400, { error: 'invalid_request', error_description: 'AADSTS900144: The request body must contain grant_type, client_id, scope, client_assertion_type and client_assertion.' });
        return true;
      }
      const token = `entra-${nextId()}`;
      issuedTokens.add(token);
      sendJson(res, 200, { token_type: 'Bearer', expires_in: 3599, ext_expires_in: 3599, access_token: token });
      return true;
    }
    if (req.method === 'POST' && path === '/' && new URLSearchParams(raw).get('Action') === 'AssumeRoleWithWebIdentity') {
      // AWS STS, as IRSA uses it: the projected service-account token for temporary credentials.
      record(req, path, raw, undefined);
      const form = new URLSearchParams(raw);
      if (!form.get('RoleArn') || !form.get('WebIdentityToken')) {
        res.writeHead(400, { 'content-type': 'text/xml' });
        res.end('<ErrorResponse><Error><Type>Sender</Type><Code>ValidationError</Code><Message>RoleArn and WebIdentityToken are required</Message></Error></ErrorResponse>');
        return true;
      }
      const n = nextId().toUpperCase().replace(/[^A-Z0-9]/g, '').slice(-12).padStart(12, '0');
      const expiration = new Date(Date.now() + 3600_000).toISOString();
      res.writeHead(200, { 'content-type': 'text/xml' });
      res.end(
        `<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><AssumeRoleWithWebIdentityResult>` +
          `<Credentials><AccessKeyId>ASIAFAKE${n}</AccessKeyId><SecretAccessKey>fake-secret-${n}</SecretAccessKey><SessionToken>fake-session-${n}</SessionToken><Expiration>${expiration}</Expiration></Credentials>` +
          `<AssumedRoleUser><Arn>${form.get('RoleArn')}/${form.get('RoleSessionName') ?? 'session'}</Arn><AssumedRoleId>AROAFAKE:${form.get('RoleSessionName') ?? 'session'}</AssumedRoleId></AssumedRoleUser>` +
          `<SubjectFromWebIdentityToken>system:serviceaccount:promptmesh:llm</SubjectFromWebIdentityToken></AssumeRoleWithWebIdentityResult>` +
          `<ResponseMetadata><RequestId>${nextId()}</RequestId></ResponseMetadata></AssumeRoleWithWebIdentityResponse>`,
      );
      return true;
    }
    if (req.method === 'GET' && path.startsWith('/computeMetadata/v1/')) {
      if (req.headers['metadata-flavor'] !== 'Google') {
        sendJson(res, 403, { error: 'Missing Metadata-Flavor:Google header.' });
        return true;
      }
      const headers = { 'metadata-flavor': 'Google' };
      if (path === '/computeMetadata/v1/instance/service-accounts/default/token') {
        record(req, path, raw, undefined);
        const token = `ya29.fake-${nextId()}`;
        issuedTokens.add(token);
        sendJson(res, 200, { access_token: token, expires_in: 3599, token_type: 'Bearer' }, headers);
      } else if (path === '/computeMetadata/v1/project/project-id') {
        res.writeHead(200, { 'content-type': 'application/text', ...headers });
        res.end('fake-project');
      } else {
        res.writeHead(200, { 'content-type': 'application/text', ...headers });
        res.end('');
      }
      return true;
    }
    return false;
  };

  /**
   * `POST /v1/embeddings` and `POST /v1/responses` (OpenAI), and `POST /openai/v1/responses`
   * (Azure OpenAI's v1 API, the deployment name as `model`): the behaviour plan applies as on
   * chat, under `api: 'openai'` or `api: 'azure'`.
   */
  const handleOpenAIExtra = async (kind: 'embeddings' | 'responses', api: 'openai' | 'azure', req: IncomingMessage, res: ServerResponse, raw: string, path: string, search: string) => {
    stats.requests++;
    const body = parseBody(raw);
    record(req, path, raw, body);
    if (api === 'azure') {
      try {
        checkAzure(req, { api, query: new URLSearchParams(search.replace(/^\?/, '')), embeddings: false, azureV1: true }, options.azureApiKey, issuedTokens);
      } catch (err) {
        const e = err as HttpError;
        sendError(res, 'azure', e);
        return count(e.status === 401 ? 'auth' : 'bad_request');
      }
    } else if (options.apiKey !== undefined && req.headers.authorization !== `Bearer ${options.apiKey}`) {
      sendError(res, 'openai', new HttpError(401, 'invalid_request_error', 'Incorrect API key provided.', null, 'invalid_api_key'), { 'www-authenticate': 'Bearer' });
      return count('auth');
    }
    const stream = kind === 'responses' && body?.stream === true;
    const model = typeof body?.model === 'string' ? body.model : '';
    const decision = behavior.decide(api, model, stream);
    let plain: string;
    let events: StreamEvents | undefined;
    try {
      if (kind === 'embeddings') plain = fakeEmbeddings(body);
      else ({ plain, events } = fakeResponse(body, nextId(), decision.reply.text));
    } catch (err) {
      if (!(err instanceof FakeRequestError)) throw err;
      sendError(res, api, new HttpError(err.status, 'invalid_request_error', err.message, err.param, 'invalid_value'));
      return count('bad_request');
    }
    stats.models[model] = (stats.models[model] ?? 0) + 1;
    if (decision.latencyMs > 0) {
      await sleep(decision.latencyMs);
      if (res.destroyed) return count('client_gone');
    }
    res.setHeader(REQUEST_ID_HEADERS[api], `req_${nextId()}`);
    const streamEvents = () => events ?? { head: [], tokens: [], tail: [] };
    if (decision.fault) return count(await applyFault(res, api, decision.fault, stream, streamEvents, () => plain, req.headers));
    if (stream) {
      await writeStream(res, api, streamEvents(), decision.reply.tokenDelayMs ?? 0, decision.reply.splitMultibyte === true);
    } else {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(plain) });
      res.end(plain);
    }
    count('ok');
  };

  // ---- routing --------------------------------------------------------------------------------

  const handleAdmin = (req: IncomingMessage, res: ServerResponse, path: string, raw: string) => {
    const route = `${req.method} ${path}`;
    switch (route) {
      case 'POST /_fake/behavior': {
        try {
          handle.setBehavior(JSON.parse(raw));
        } catch (err) {
          const e = err instanceof PlanError ? err : new PlanError('body', 'is not valid JSON');
          return sendJson(res, 400, { error: { type: 'invalid_request_error', message: e.message, param: e.field, code: null } });
        }
        return sendJson(res, 200, { ok: true });
      }
      case 'DELETE /_fake/behavior':
        behavior = new Behavior({});
        return sendJson(res, 200, { ok: true });
      case 'GET /_fake/requests':
        return sendJson(res, 200, { data: requests });
      case 'DELETE /_fake/requests':
        requests = [];
        stats = { requests: 0, inFlight: stats.inFlight, outcomes: {}, models: {} };
        return sendJson(res, 200, { ok: true });
      case 'GET /_fake/stats':
        return sendJson(res, 200, stats);
      default:
        return sendJson(res, 404, { error: { type: 'not_found_error', message: `no admin route ${route}`, param: null, code: 'not_found' } });
    }
  };

  const onRequest = (req: IncomingMessage, res: ServerResponse) => {
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const path = q >= 0 ? url.slice(0, q) : url;
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const raw = chunks.length === 1 ? chunks[0].toString('utf8') : Buffer.concat(chunks).toString('utf8');
      const extra =
        req.method !== 'POST' ? undefined : path === '/v1/embeddings' || path === '/embeddings' ? 'embeddings' : path === '/v1/responses' || path === '/responses' || path === AZURE_V1_RESPONSES ? 'responses' : undefined;
      if (extra) {
        stats.inFlight++;
        let done = false;
        res.once('close', () => {
          if (!done) {
            done = true;
            stats.inFlight--;
          }
        });
        handleOpenAIExtra(extra, path === AZURE_V1_RESPONSES ? 'azure' : 'openai', req, res, raw, path, url.slice(path.length)).catch(() => {
          count('fake_error');
          res.socket?.destroy();
        });
        return;
      }
      const route = routeOf(req.method, path, url.slice(path.length));
      if (route) {
        stats.inFlight++;
        let done = false;
        const finish = () => {
          if (!done) {
            done = true;
            stats.inFlight--;
          }
        };
        res.once('close', finish);
        const handler = route.embeddings ? handleEmbeddings : handleCompletion;
        handler(route, req, res, raw, path).catch(() => {
          count('fake_error');
          res.socket?.destroy();
        });
        return;
      }
      if (handleIdentity(req, res, path, raw)) return;
      if (req.method === 'GET' && (path === '/v1/models' || path === '/models')) {
        return sendJson(res, 200, { object: 'list', data: models.map((id) => ({ id, object: 'model', created: 1_700_000_000, owned_by: 'promptmesh-fake' })) });
      }
      if (path.startsWith('/_fake/')) return handleAdmin(req, res, path, raw);
      sendJson(res, 404, { error: { type: 'invalid_request_error', message: `Unknown request URL: ${req.method} ${path}`, param: null, code: 'unknown_url' } });
    });
  };

  const server: Server = createServer({ keepAliveTimeout: 30_000 }, onRequest);
  server.headersTimeout = 35_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;

  const handle: FakeProvider = {
    url: `http://${host.includes(':') ? `[${host}]` : host}:${port}`,
    port,
    setBehavior(plan: BehaviorPlan) {
      behavior = new Behavior(validatePlan(plan));
    },
    reset() {
      behavior = new Behavior({});
      requests = [];
      stats = { requests: 0, inFlight: stats.inFlight, outcomes: {}, models: {} };
    },
    get requests() {
      return requests;
    },
    get stats() {
      return stats;
    },
    close() {
      closed = true;
      for (const t of timers) clearTimeout(t);
      timers.clear();
      return new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
  return handle;
}

/** Which API, operation and model a request path names. */
interface ApiRoute {
  api: FakeApi;
  /** The query string parsed. */
  query: URLSearchParams;
  /** An embeddings operation (Azure `/embeddings`, Bedrock `invoke`, Gemini `predict` / `*EmbedContent*`). */
  embeddings: boolean;
  /** Azure: the deployment named in the path (undefined on the `/openai/v1/` paths). */
  deployment?: string;
  /** Azure: the `/openai/v1/` API, which takes no `api-version`. */
  azureV1?: boolean;
  bedrock?: { modelId: string; op: 'converse' | 'converse-stream' | 'invoke' };
  gemini?: GeminiRoute;
}

/** The API route of a request, or undefined when the path is none of the provider APIs. */
function routeOf(method: string | undefined, path: string, search: string): ApiRoute | undefined {
  const query = new URLSearchParams(search.startsWith('?') ? search.slice(1) : search);
  if (method !== 'POST') return undefined;
  if (path === '/v1/chat/completions' || path === '/chat/completions') return { api: 'openai', query, embeddings: false };
  if (path === '/v1/messages') return { api: 'anthropic', query, embeddings: false };
  const azure = /^\/openai\/deployments\/([^/]+)\/(chat\/completions|embeddings)$/.exec(path);
  if (azure) return { api: 'azure', query, embeddings: azure[2] === 'embeddings', deployment: decodeURIComponent(azure[1]!) };
  if (path === '/openai/v1/chat/completions') return { api: 'azure', query, embeddings: false, azureV1: true };
  const bedrock = bedrockRoute(method, path);
  if (bedrock) return { api: 'bedrock', query, embeddings: bedrock.op === 'invoke', bedrock };
  const gemini = geminiRoute(method, path);
  if (gemini) return { api: 'gemini', query, embeddings: !['generateContent', 'streamGenerateContent'].includes(gemini.method), gemini };
  return undefined;
}

/** Azure OpenAI's v1 Responses API path. */
const AZURE_V1_RESPONSES = '/openai/v1/responses';

/**
 * The `api-version` values Azure's v1 API (`/openai/v1/...`) takes: none (the v1 API needs no
 * dated version), or `v1` / `preview`; a dated version such as `2024-10-21` is refused there.
 */
const AZURE_V1_API_VERSIONS = new Set(['v1', 'preview']);

/**
 * Azure's checks: `api-version` (required on deployment paths; on the v1 API optional, and only
 * `v1` or `preview`), and an `api-key`, or a bearer token: one the fake issued (Entra ID), or on
 * the v1 API the key itself (what the `openai` SDK's `OpenAI` client sends).
 */
function checkAzure(req: IncomingMessage, route: ApiRoute, apiKey: string | undefined, tokens: Set<string>): void {
  const version = route.query.get('api-version');
  if (!route.azureV1 && !version) throw new HttpError(404, 'invalid_request_error', 'Resource not found', null, '404');
  if (route.azureV1 && version !== null && !AZURE_V1_API_VERSIONS.has(version)) {
    throw new HttpError(400, 'invalid_request_error', `API version not supported: '${version}' on the v1 API (omit api-version, or use 'v1' or 'preview')`, 'api-version', 'BadRequest');
  }
  const isKey = (k: unknown) => typeof k === 'string' && k.length > 0 && (apiKey === undefined || k === apiKey);
  const auth = req.headers.authorization;
  const bearer = typeof auth === 'string' && auth.startsWith('Bearer ') ? auth.slice(7) : undefined;
  const keyOk = isKey(req.headers['api-key']) || (route.azureV1 === true && bearer !== undefined && isKey(bearer));
  const tokenOk = bearer !== undefined && tokens.has(bearer);
  if (!keyOk && !tokenOk) {
    throw new HttpError(401, 'invalid_request_error', 'Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key for an active subscription and use a correct regional API endpoint for your resource.', null, '401');
  }
}

/** Gemini's auth: Vertex wants a bearer token (one the fake issued), the Gemini API a key. */
function checkGeminiAuth(req: IncomingMessage, route: ApiRoute, apiKey: string | undefined, tokens: Set<string>): void {
  if (route.gemini!.hosting === 'vertex') {
    const auth = req.headers.authorization;
    if (typeof auth !== 'string' || !auth.startsWith('Bearer ') || !tokens.has(auth.slice(7))) {
      throw new HttpError(401, 'UNAUTHENTICATED', 'Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.');
    }
    return;
  }
  const key = req.headers['x-goog-api-key'] ?? route.query.get('key') ?? undefined;
  if (typeof key !== 'string' || key.length === 0) throw new HttpError(403, 'PERMISSION_DENIED', 'Method doesn\'t allow unregistered callers (callers without established identity). Please use API Key or other form of API consumer identity to call this API.');
  if (apiKey !== undefined && key !== apiKey) throw new HttpError(400, 'INVALID_ARGUMENT', 'API key not valid. Please pass a valid API key.');
}

/** Azure OpenAI embeddings (the OpenAI Embeddings API on a deployment). */
function azureEmbeddings(deployment: string, body: Json | undefined): Json {
  const input: unknown = body?.input;
  const texts = typeof input === 'string' ? [input] : Array.isArray(input) ? input : undefined;
  if (!texts || texts.length === 0) throw new HttpError(400, 'invalid_request_error', "'input' is a required property", 'input', null);
  if (body!.encoding_format !== undefined && body!.encoding_format !== 'float' && body!.encoding_format !== 'base64') throw new HttpError(400, 'invalid_request_error', "Invalid value for 'encoding_format'", 'encoding_format', null);
  const dims = body!.dimensions ?? 1536;
  const vectors = texts.map((t) => fakeVector(typeof t === 'string' ? t : JSON.stringify(t), dims));
  const tokens = texts.reduce((n: number, t) => n + (typeof t === 'string' ? estimateTokens(t) : Array.isArray(t) ? t.length : 1), 0);
  const data = vectors.map((v, index) => ({
    object: 'embedding',
    index,
    embedding: body!.encoding_format === 'base64' ? Buffer.from(new Float32Array(v).buffer).toString('base64') : v,
  }));
  return { object: 'list', data, model: deployment, usage: { prompt_tokens: tokens, total_tokens: tokens } };
}

/** The error type and message each API uses for a status. */
function statusError(api: FakeApi, status: number): [string, string] {
  if (api === 'bedrock') return bedrockStatusError(status);
  if (api === 'gemini') return geminiStatusError(status);
  if (api === 'anthropic') {
    const map: Record<number, [string, string]> = {
      400: ['invalid_request_error', 'invalid request'],
      401: ['authentication_error', 'invalid x-api-key'],
      403: ['permission_error', 'permission denied'],
      404: ['not_found_error', 'not found'],
      413: ['request_too_large', 'request too large'],
      429: ['rate_limit_error', 'Number of request tokens has exceeded your per-minute rate limit'],
      500: ['api_error', 'Internal server error'],
      529: ['overloaded_error', 'Overloaded'],
    };
    return map[status] ?? ['api_error', `fake error ${status}`];
  }
  const map: Record<number, [string, string]> = {
    400: ['invalid_request_error', 'invalid request'],
    401: ['invalid_request_error', 'Incorrect API key provided'],
    403: ['invalid_request_error', 'permission denied'],
    404: ['invalid_request_error', 'The model does not exist or you do not have access to it.'],
    429: ['requests', 'Rate limit reached for requests'],
    500: ['server_error', 'The server had an error while processing your request.'],
    503: ['server_error', 'The engine is currently overloaded, please try again later'],
  };
  return map[status] ?? ['server_error', `fake error ${status}`];
}

const OPENAI_ROLES = new Set(['system', 'developer', 'user', 'assistant', 'tool', 'function']);

function checkOpenAI(req: IncomingMessage, body: Json | undefined, apiKey: string | undefined): void {
  if (apiKey !== undefined) {
    const auth = req.headers.authorization;
    if (!auth || !auth.startsWith('Bearer ')) {
      throw new HttpError(401, 'invalid_request_error', "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth.", null, 'missing_api_key');
    }
    if (auth.slice(7) !== apiKey) throw new HttpError(401, 'invalid_request_error', 'Incorrect API key provided.', null, 'invalid_api_key');
  }
  if (!body) throw new HttpError(400, 'invalid_request_error', 'We could not parse the JSON body of your request.', null, null);
  if (typeof body.model !== 'string' || body.model.length === 0) throw new HttpError(400, 'invalid_request_error', "you must provide a model parameter", 'model', null);
  if (!Array.isArray(body.messages) || body.messages.length === 0) {
    throw new HttpError(400, 'invalid_request_error', "Invalid 'messages': must be a non-empty array.", 'messages', 'invalid_value');
  }
  body.messages.forEach((m: unknown, i: number) => {
    if (!m || typeof m !== 'object' || !OPENAI_ROLES.has((m as Json).role)) {
      throw new HttpError(400, 'invalid_request_error', `Invalid value for 'messages[${i}].role'.`, `messages[${i}].role`, 'invalid_value');
    }
  });
  checkOpenAIToolPairing(body.messages as Json[]);
  for (const field of ['max_tokens', 'max_completion_tokens'] as const) {
    const v = body[field];
    if (v !== undefined && v !== null && !(Number.isInteger(v) && v >= 1)) {
      throw new HttpError(400, 'invalid_request_error', `Invalid '${field}': must be an integer >= 1.`, field, 'invalid_value');
    }
  }
}

function checkAnthropic(req: IncomingMessage, body: Json | undefined, apiKey: string | undefined): void {
  // The API takes the key in `x-api-key`, or as `Authorization: Bearer` (what recent SDKs send).
  const auth = req.headers.authorization;
  const key = req.headers['x-api-key'] ?? (auth?.startsWith('Bearer ') ? auth.slice(7) : undefined);
  if (typeof key !== 'string' || key.length === 0) throw new HttpError(401, 'authentication_error', 'x-api-key header is required');
  if (apiKey !== undefined && key !== apiKey) throw new HttpError(401, 'authentication_error', 'invalid x-api-key');
  if (!req.headers['anthropic-version']) throw new HttpError(400, 'invalid_request_error', 'anthropic-version: header is required');
  if (!body) throw new HttpError(400, 'invalid_request_error', 'invalid JSON body');
  if (typeof body.model !== 'string' || body.model.length === 0) throw new HttpError(400, 'invalid_request_error', 'model: Field required');
  if (!(Number.isInteger(body.max_tokens) && body.max_tokens >= 1)) throw new HttpError(400, 'invalid_request_error', 'max_tokens: Field required (an integer >= 1)');
  if (!Array.isArray(body.messages) || body.messages.length === 0) throw new HttpError(400, 'invalid_request_error', 'messages: at least one message is required');
  body.messages.forEach((m: unknown, i: number) => {
    const role = m && typeof m === 'object' ? (m as Json).role : undefined;
    if (role !== 'user' && role !== 'assistant') throw new HttpError(400, 'invalid_request_error', `messages.${i}.role: Input should be 'user' or 'assistant'`);
    const content = (m as Json).content;
    if (typeof content !== 'string' && !Array.isArray(content)) throw new HttpError(400, 'invalid_request_error', `messages.${i}.content: Input should be a valid string or list`);
  });
  if (body.system !== undefined && typeof body.system !== 'string' && !Array.isArray(body.system)) {
    throw new HttpError(400, 'invalid_request_error', 'system: Input should be a valid string or list');
  }
  checkAnthropicToolPairing(body.messages as Json[]);
  checkAnthropicThinking(body);
}

/**
 * Anthropic's rules for thinking in the history: every `thinking` block carries the signature
 * it was answered with (the fake checks it against the text), a `redacted_thinking` block its
 * `data`, and with thinking on, a tool-use continuation (the last message holds tool results)
 * has its last assistant turn start with a thinking block.
 */
function checkAnthropicThinking(body: Json): void {
  const messages = body.messages as Json[];
  messages.forEach((m, i) => {
    if (!Array.isArray(m.content)) return;
    (m.content as Json[]).forEach((b, j) => {
      if (b?.type === 'thinking') {
        if (typeof b.signature !== 'string' || b.signature.length === 0) throw new HttpError(400, 'invalid_request_error', `messages.${i}.content.${j}.thinking.signature: Field required`);
        if (typeof b.thinking !== 'string' || b.signature !== thinkingSignature(b.thinking)) throw new HttpError(400, 'invalid_request_error', `messages.${i}.content.${j}: Invalid \`signature\` in \`thinking\` block`);
      } else if (b?.type === 'redacted_thinking' && (typeof b.data !== 'string' || b.data.length === 0)) {
        throw new HttpError(400, 'invalid_request_error', `messages.${i}.content.${j}.redacted_thinking.data: Field required`);
      }
    });
  });
  const last = messages.at(-1);
  const continuation = last?.role === 'user' && Array.isArray(last.content) && (last.content as Json[]).some((b) => b?.type === 'tool_result');
  if ((body.thinking as Json | undefined)?.type !== 'enabled' || !continuation) return;
  const at = messages.length - 2;
  const first = (messages[at]?.content as Json[] | undefined)?.[0];
  if (first?.type !== 'thinking' && first?.type !== 'redacted_thinking') {
    throw new HttpError(400, 'invalid_request_error', `messages.${at}.content.0.type: Expected \`thinking\` or \`redacted_thinking\`, but found \`${String(first?.type ?? 'text')}\`. ${THINKING_FIRST_MESSAGE}`);
  }
}

/**
 * OpenAI's rule for tool traffic: a `tool` message answers a `tool_call_id` of the assistant
 * message with `tool_calls` right before it (other tool messages between them allowed), and
 * every call is answered before the next user or assistant message, or the end.
 */
function checkOpenAIToolPairing(messages: Json[]): void {
  let open: Set<unknown> | undefined;
  let openAt = -1;
  const unanswered = () =>
    new HttpError(
      400,
      'invalid_request_error',
      `An assistant message with 'tool_calls' must be followed by tool messages responding to each 'tool_call_id'. The following tool_call_ids did not have response messages: ${[...open!].join(', ')}`,
      `messages.[${openAt}].role`,
      null,
    );
  messages.forEach((m, i) => {
    if (m.role === 'tool') {
      if (!open?.delete(m.tool_call_id)) {
        throw new HttpError(400, 'invalid_request_error', "Invalid parameter: messages with role 'tool' must be a response to a preceeding message with 'tool_calls'.", `messages.[${i}].role`, null);
      }
      return;
    }
    if (open && open.size > 0) throw unanswered();
    const calls = m.role === 'assistant' && Array.isArray(m.tool_calls) ? (m.tool_calls as Json[]) : [];
    open = calls.length > 0 ? new Set(calls.map((c) => c?.id)) : undefined;
    openAt = i;
  });
  if (open && open.size > 0) throw unanswered();
}

/**
 * Anthropic's rule: every `tool_use` block of an assistant message is answered by a
 * `tool_result` block in the next message (a user message), and a `tool_result` answers a
 * `tool_use` of the message right before it.
 */
function checkAnthropicToolPairing(messages: Json[]): void {
  const blocks = (m: Json | undefined, type: string): Json[] => (m && Array.isArray(m.content) ? (m.content as Json[]).filter((b) => b?.type === type) : []);
  messages.forEach((m, i) => {
    const uses = new Set(blocks(messages[i - 1], 'tool_use').map((b) => b.id));
    const results = blocks(m, 'tool_result');
    for (const r of results) {
      if (!uses.has(r.tool_use_id)) {
        throw new HttpError(400, 'invalid_request_error', `messages.${i}.content: unexpected \`tool_use_id\` found in \`tool_result\` blocks: ${r.tool_use_id}. Each \`tool_result\` block must have a corresponding \`tool_use\` block in the previous message.`);
      }
    }
    const missing = blocks(m, 'tool_use')
      .map((b) => b.id)
      .filter((id) => !blocks(messages[i + 1], 'tool_result').some((r) => r.tool_use_id === id));
    if (missing.length > 0) {
      throw new HttpError(400, 'invalid_request_error', `messages.${i + 1}: \`tool_use\` ids were found without \`tool_result\` blocks immediately after: ${missing.join(', ')}. Each \`tool_use\` block must have a corresponding \`tool_result\` block in the next message.`);
    }
  });
}
