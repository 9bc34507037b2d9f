/**
 * The fake LLM provider: a real HTTP server (node:http) that speaks the OpenAI Chat Completions
 * API and the Anthropic Messages API, streaming included, and misbehaves on demand (latency,
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

/** What the reply to one request is, before it is put on the wire. */
interface Reply {
  id: string;
  model: string;
  /** Content tokens, each one streamed delta. Empty for a tool call. */
  pieces: string[];
  toolCall?: { id: string; name: string; arguments: string };
  finish: 'stop' | 'length' | 'tool' | 'stop_sequence';
  stopSequence: string | null;
  promptTokens: number;
  completionTokens: number;
  tokenDelayMs: number;
  omitUsage: boolean;
  /** Of promptTokens: read from / written to the prompt cache. */
  cachedTokens?: number;
  cacheWriteTokens?: number;
  /**
   * Anthropic, when the request enables `thinking`: the reasoning block that precedes the answer
   * (its signature is what the real API signs it with; the fake's is derived from the text).
   */
  thinking?: { text: string; signature: string };
}

/** The SSE events of one stream: those before the content, the content deltas, those after. */
interface StreamEvents {
  head: string[];
  tokens: string[];
  tail: string[];
}

type Json = Record<string, any>;

class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly type: string,
    message: string,
    readonly param: string | null = null,
    readonly code: string | null = null,
  ) {
    super(message);
  }
}

/** Cheap token estimate (about four characters a token), enough for realistic usage fields. */
function estimateTokens(text: string): number {
  return text.length === 0 ? 0 : Math.ceil(text.length / 4);
}

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
    const body =
      api === 'anthropic'
        ? { type: 'error', error: { type: err.type, message: err.message } }
        : { error: { message: err.message, type: err.type, param: err.param, code: err.code } };
    sendJson(res, err.status, body, headers);
  };

  // ---- replies --------------------------------------------------------------------------------

  const buildReply = (api: FakeApi, body: Json, options: ReplyOptions): Reply => {
    let reply = buildPlainReply(api, body, options);
    const thinking = body.thinking as { type?: string } | undefined;
    if (api === 'anthropic' && thinking?.type === 'enabled') {
      const text = `Thinking about: ${lastUserText(body.messages as Json[])}`;
      reply = { ...reply, thinking: { text, signature: `sig_${Buffer.from(text).toString('base64url').slice(0, 32)}` }, completionTokens: reply.completionTokens + estimateTokens(text) };
    }
    const cachedTokens = Math.min(reply.promptTokens, options.cachedTokens ?? 0);
    const cacheWriteTokens = Math.min(reply.promptTokens - cachedTokens, options.cacheWriteTokens ?? 0);
    return cachedTokens > 0 || cacheWriteTokens > 0 ? { ...reply, cachedTokens, cacheWriteTokens } : reply;
  };

  const buildPlainReply = (api: FakeApi, body: Json, options: ReplyOptions): Reply => {
    const messages = body.messages as Json[];
    const id = api === 'anthropic' ? `msg_${nextId()}` : `chatcmpl-${nextId()}`;
    const prompt = promptTokens(messages, api === 'anthropic' ? body.system : undefined);
    const tokenDelayMs = options.tokenDelayMs ?? 0;
    const omitUsage = options.omitUsage ?? false;
    if (options.toolCall) {
      const args = JSON.stringify(options.toolCall.arguments);
      return {
        id,
        model: body.model,
        pieces: [],
        toolCall: { id: api === 'anthropic' ? `toolu_${nextId()}` : `call_${nextId()}`, name: options.toolCall.name, arguments: args },
        finish: 'tool',
        stopSequence: null,
        promptTokens: prompt,
        completionTokens: estimateTokens(args) + 8,
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
    const stops = api === 'anthropic' ? asStopList(body.stop_sequences) : asStopList(body.stop);
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
      finish = api === 'anthropic' ? 'stop_sequence' : 'stop';
    }
    const maxTokens = api === 'anthropic' ? body.max_tokens : (body.max_completion_tokens ?? body.max_tokens);
    if (typeof maxTokens === 'number' && pieces.length > maxTokens) {
      pieces = pieces.slice(0, Math.max(0, maxTokens));
      finish = 'length';
      stopSequence = null;
    }
    return { id, model: body.model, pieces, finish, stopSequence, promptTokens: prompt, completionTokens: pieces.length, tokenDelayMs, omitUsage };
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
        message: r.toolCall
          ? { role: 'assistant', content: null, refusal: null, tool_calls: [{ id: r.toolCall.id, type: 'function', function: { name: r.toolCall.name, arguments: r.toolCall.arguments } }] }
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
      ...(r.toolCall ? [{ type: 'tool_use', id: r.toolCall.id, name: r.toolCall.name, input: JSON.parse(r.toolCall.arguments) }] : [{ type: 'text', text: r.pieces.join('') }]),
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
    if (r.toolCall) {
      const tc = r.toolCall;
      head.push(chunk(JSON.stringify({ tool_calls: [{ index: 0, id: tc.id, type: 'function', function: { name: tc.name, arguments: '' } }] })));
      const step = Math.max(1, Math.ceil(tc.arguments.length / 3));
      for (let i = 0; i < tc.arguments.length; i += step) {
        tokens.push(chunk(JSON.stringify({ tool_calls: [{ index: 0, function: { arguments: tc.arguments.slice(i, i + step) } }] })));
      }
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
        content_block: r.toolCall ? { type: 'tool_use', id: r.toolCall.id, name: r.toolCall.name, input: {} } : { type: 'text', text: '' },
      }),
      ev('ping', { type: 'ping' }),
    );
    const tokens: string[] = [];
    if (r.toolCall) {
      const args = r.toolCall.arguments;
      const step = Math.max(1, Math.ceil(args.length / 3));
      for (let i = 0; i < args.length; i += step) {
        tokens.push(ev('content_block_delta', { type: 'content_block_delta', index: at, delta: { type: 'input_json_delta', partial_json: args.slice(i, i + step) } }));
      }
    } else {
      for (const p of r.pieces) tokens.push(ev('content_block_delta', { type: 'content_block_delta', index: at, delta: { type: 'text_delta', text: p } }));
    }
    const tail = [
      ev('content_block_stop', { type: 'content_block_stop', index: at }),
      ev('message_delta', { type: 'message_delta', delta: { stop_reason: anthropicStop(r), stop_sequence: r.stopSequence }, usage: { output_tokens: r.completionTokens } }),
      ev('message_stop', { type: 'message_stop' }),
    ];
    return { head, tokens, tail };
  };

  // ---- faults ---------------------------------------------------------------------------------

  const brokenEvent = (api: FakeApi) =>
    api === 'anthropic' ? 'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":\n\n' : 'data: {"id":"chatcmpl-broken","choices":[{"delta":{"content":\n\n';

  /** Writes `data`, then destroys the socket once it is flushed. */
  const writeThenReset = (res: ServerResponse, data: string) => {
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
        sendError(res, api, new HttpError(fault.status, type, echo(fault.message ?? message), null, null), headers);
        return `status_${fault.status}`;
      }
      case 'reset': {
        if (!fault.afterHeaders) {
          res.socket?.destroy();
          return 'reset';
        }
        if (stream) {
          const ev = events();
          res.writeHead(200, SSE_HEADERS);
          writeThenReset(res, ev.head.join('') + (ev.tokens[0] ?? ''));
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
          res.writeHead(200, SSE_HEADERS);
          res.write(ev.head.join('') + ev.tokens.slice(0, fault.afterChunks ?? 2).join(''));
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
        res.writeHead(200, SSE_HEADERS);
        const error =
          api === 'anthropic'
            ? `event: error\ndata: ${JSON.stringify({ type: 'error', error: { type: 'overloaded_error', message: echo('Overloaded') } })}\n\n`
            : `data: ${JSON.stringify({ error: { message: echo('The server had an error while processing your request.'), type: 'server_error', param: null, code: null } })}\n\n`;
        res.end(ev.head.join('') + ev.tokens.slice(0, fault.afterChunks ?? 1).join('') + error);
        return 'error_event';
      }
      case 'malformed': {
        if (stream) {
          const ev = events();
          res.writeHead(200, SSE_HEADERS);
          res.end(ev.head.join('') + (ev.tokens[0] ?? '') + brokenEvent(api) + ev.tail.join(''));
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

  const writeStream = async (res: ServerResponse, ev: StreamEvents, delayMs: number, splitMultibyte = false) => {
    res.writeHead(200, SSE_HEADERS);
    if (splitMultibyte) {
      res.socket?.setNoDelay(true);
      await writeSplit(res, ev.head.join('') + ev.tokens.join('') + ev.tail.join(''));
      res.end();
      return;
    }
    if (delayMs <= 0) {
      res.end(ev.head.join('') + ev.tokens.join('') + ev.tail.join(''));
      return;
    }
    res.write(ev.head.join(''));
    for (const t of ev.tokens) {
      await sleep(delayMs);
      if (res.destroyed) return;
      res.write(t);
    }
    res.end(ev.tail.join(''));
  };

  // ---- the provider APIs ----------------------------------------------------------------------

  const handleCompletion = async (api: FakeApi, req: IncomingMessage, res: ServerResponse, raw: string, path: string) => {
    stats.requests++;
    let body: Json | undefined;
    try {
      const parsed: unknown = raw.length > 0 ? JSON.parse(raw) : undefined;
      body = parsed && typeof parsed === 'object' && !Array.isArray(parsed) ? (parsed as Json) : undefined;
    } catch {
      body = undefined;
    }
    record(req, path, raw, body);
    try {
      if (api === 'openai') checkOpenAI(req, body, options.apiKey);
      else checkAnthropic(req, body, options.anthropicApiKey);
    } catch (err) {
      const e = err as HttpError;
      sendError(res, api, e, e.status === 401 && api === 'openai' ? { 'www-authenticate': 'Bearer' } : {});
      count(e.status === 401 ? 'auth' : 'bad_request');
      return;
    }
    const b = body as Json;
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
    const includeUsage = api === 'openai' && b.stream_options?.include_usage === true && !reply.omitUsage;
    const events = () => (api === 'openai' ? openaiEvents(reply, created, includeUsage) : anthropicEvents(reply));
    const plainBody = () => JSON.stringify(api === 'openai' ? openaiCompletion(reply, created) : anthropicMessage(reply));
    const requestIdHeader = api === 'openai' ? 'x-request-id' : 'request-id';
    res.setHeader(requestIdHeader, `req_${reply.id}`);
    if (decision.fault) {
      count(await applyFault(res, api, decision.fault, stream, events, plainBody, req.headers));
      return;
    }
    if (stream) {
      await writeStream(res, events(), reply.tokenDelayMs, decision.reply.splitMultibyte === true);
    } else {
      const text = plainBody();
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
      res.end(text);
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
      let api: FakeApi | undefined;
      if (req.method === 'POST' && (path === '/v1/chat/completions' || path === '/chat/completions')) api = 'openai';
      else if (req.method === 'POST' && path === '/v1/messages') api = 'anthropic';
      if (api) {
        stats.inFlight++;
        let done = false;
        const finish = () => {
          if (!done) {
            done = true;
            stats.inFlight--;
          }
        };
        res.once('close', finish);
        handleCompletion(api, req, res, raw, path).catch(() => {
          count('fake_error');
          res.socket?.destroy();
        });
        return;
      }
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

/** The error type and message each API uses for a status. */
function statusError(api: FakeApi, status: number): [string, string] {
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
