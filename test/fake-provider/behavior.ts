/**
 * The misbehaviour plans of the fake provider: what a plan may say, how it is validated, and how
 * a request picks the rule that applies to it (with a seedable RNG, so runs are reproducible).
 */

/** Which API a request came in on (`azure` is OpenAI's wire format on Azure's paths; `gemini` is Vertex AI and the Gemini API). */
export type FakeApi = 'openai' | 'anthropic' | 'azure' | 'bedrock' | 'gemini';
/** Every {@link FakeApi}. */
export const FAKE_APIS: readonly FakeApi[] = ['openai', 'anthropic', 'azure', 'bedrock', 'gemini'];

/** How the fake shapes its successful replies. */
export interface ReplyOptions {
  /**
   * A fixed reply text.
   * @default "echo: <the last user message>"
   */
  text?: string;
  /**
   * The completion length in tokens: the reply's words are repeated or cut to exactly this many
   * (one word, with its leading space, is one token for the fake).
   * @default the natural length of the reply text
   */
  tokens?: number;
  /**
   * Delay between two streamed tokens, in milliseconds.
   * @default 0 (the whole stream is written at once)
   */
  tokenDelayMs?: number;
  /**
   * Answer with a tool call instead of text (OpenAI `tool_calls`, Anthropic `tool_use`).
   * @default no tool call
   */
  toolCall?: { name: string; arguments: Record<string, unknown> };
  /**
   * Answer with several tool calls at once (parallel tool calls); wins over `toolCall`.
   * @default no tool call
   */
  toolCalls?: Array<{ name: string; arguments: Record<string, unknown> }>;
  /**
   * Reasoning text sent before the answer: Bedrock `reasoningContent`, Gemini `thought` parts
   * (the OpenAI and Anthropic sides ignore it).
   * @default none
   */
  reasoning?: string;
  /**
   * Send no usage at all (no `usage` field, no usage chunk even when asked), like some
   * OpenAI-compatible servers.
   * @default false
   */
  omitUsage?: boolean;
  /**
   * Input tokens reported as read from the prompt cache (OpenAI
   * `prompt_tokens_details.cached_tokens`, Anthropic `cache_read_input_tokens`); at most the
   * prompt's tokens.
   * @default 0
   */
  cachedTokens?: number;
  /** Input tokens reported as written to the prompt cache (Anthropic `cache_creation_input_tokens`). @default 0 */
  cacheWriteTokens?: number;
  /**
   * Streams only: cut the bytes so that every multi-byte UTF-8 character is split across two
   * network chunks (each piece written and flushed on its own, Nagle off), as a real network
   * may deliver them. A client that decodes each chunk on its own corrupts those characters.
   * @default false
   */
  splitMultibyte?: boolean;
}

/** One way to fail. */
export type Fault =
  /** Answer with this HTTP status and the API's error body (`retryAfter` seconds, `retryAfterMs` for `retry-after-ms`). */
  | { type: 'status'; status: number; retryAfter?: number | string; retryAfterMs?: number; message?: string; echoRequest?: boolean }
  /** Destroy the socket: before any header (default), or after the headers and part of the body. */
  | { type: 'reset'; afterHeaders?: boolean }
  /**
   * Stop sending without closing. Streams stall after `afterChunks` chunks (default 2); plain
   * requests never get their headers unless `beforeHeaders: false` (then half a body is sent).
   */
  | { type: 'stall'; afterChunks?: number; beforeHeaders?: boolean }
  /** A 200 whose body does not parse: invalid JSON, or a broken SSE event mid-stream. */
  | { type: 'malformed' }
  /**
   * Streams only: an error event after `afterChunks` content chunks (default 1), then the end.
   * Anthropic sends `event: error` with an `overloaded_error`; OpenAI a `data: {"error": ...}`.
   * Plain requests get a 500 instead. `echoRequest` (here and on `status`) puts the request's
   * headers, credentials included, into the error message, as some proxies do.
   */
  | { type: 'error_event'; afterChunks?: number; echoRequest?: boolean };

/** A fault with its share in a mixed rule. */
export type WeightedFault = Fault & { weight?: number };

/** One rule of a plan; the first rule that matches a request applies to it. */
export interface BehaviorRule {
  /** Only requests for this model (or one of these). @default every model */
  model?: string | string[];
  /** Only requests on this API. @default both */
  api?: FakeApi;
  /** Only streaming (true) or plain (false) requests. @default both */
  stream?: boolean;
  /** Apply to the next N matching requests only, then the rule is spent. @default unlimited */
  times?: number;
  /** Apply to a matching request with this probability (0..1), rolled with the plan's RNG. @default 1 */
  probability?: number;
  /** Added before the headers: a fixed delay or a `[min, max]` range in ms. @default none */
  latencyMs?: number | [number, number];
  /** The failure to produce. @default none (a normal reply, after `latencyMs`) */
  fault?: Fault;
  /** A failure picked by weight for each request (takes precedence over `fault`). */
  mix?: WeightedFault[];
  /** Reply options for the requests this rule matches (merged over the plan's). */
  reply?: ReplyOptions;
}

/** A behaviour plan, as `setBehavior()` and `POST /_fake/behavior` take it. */
export interface BehaviorPlan {
  /** Seed of the RNG behind probabilities, mixes and latency ranges. @default 1 */
  seed?: number;
  /** Reply options for every request. */
  reply?: ReplyOptions;
  /** Rules, first match wins. @default none: every request succeeds */
  rules?: BehaviorRule[];
}

/** What a request should get, once the plan has been consulted. */
export interface Decision {
  latencyMs: number;
  fault: Fault | undefined;
  reply: ReplyOptions;
}

/** Thrown for an invalid plan; `field` names the offending field. */
export class PlanError extends Error {
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(`${field}: ${message}`);
    this.name = 'PlanError';
  }
}

/** mulberry32: small, fast and good enough to make fault injection reproducible. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isNonNegNumber = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v) && v >= 0;

function checkKeys(value: Record<string, unknown>, allowed: readonly string[], field: string): void {
  for (const key of Object.keys(value)) {
    if (!allowed.includes(key)) throw new PlanError(field ? `${field}.${key}` : key, `unknown field (allowed: ${allowed.join(', ')})`);
  }
}

function validateReply(reply: unknown, field: string): ReplyOptions {
  if (!isObject(reply)) throw new PlanError(field, 'must be an object');
  checkKeys(reply, ['text', 'tokens', 'tokenDelayMs', 'toolCall', 'toolCalls', 'reasoning', 'omitUsage', 'cachedTokens', 'cacheWriteTokens', 'splitMultibyte'], field);
  if (reply.reasoning !== undefined && typeof reply.reasoning !== 'string') throw new PlanError(`${field}.reasoning`, 'must be a string');
  if (reply.toolCalls !== undefined) {
    if (!Array.isArray(reply.toolCalls) || reply.toolCalls.length === 0) throw new PlanError(`${field}.toolCalls`, 'must be a non-empty array');
    reply.toolCalls.forEach((tc: unknown, i: number) => {
      if (!isObject(tc) || typeof tc.name !== 'string' || !isObject(tc.arguments)) throw new PlanError(`${field}.toolCalls[${i}]`, 'must be { name: string, arguments: object }');
    });
  }
  for (const k of ['cachedTokens', 'cacheWriteTokens'] as const) {
    if (reply[k] !== undefined && !(Number.isInteger(reply[k]) && (reply[k] as number) >= 0)) throw new PlanError(`${field}.${k}`, 'must be an integer >= 0');
  }
  if (reply.omitUsage !== undefined && typeof reply.omitUsage !== 'boolean') throw new PlanError(`${field}.omitUsage`, 'must be a boolean');
  if (reply.splitMultibyte !== undefined && typeof reply.splitMultibyte !== 'boolean') throw new PlanError(`${field}.splitMultibyte`, 'must be a boolean');
  if (reply.text !== undefined && typeof reply.text !== 'string') throw new PlanError(`${field}.text`, 'must be a string');
  if (reply.tokens !== undefined && !(Number.isInteger(reply.tokens) && (reply.tokens as number) >= 1)) {
    throw new PlanError(`${field}.tokens`, 'must be an integer >= 1');
  }
  if (reply.tokenDelayMs !== undefined && !isNonNegNumber(reply.tokenDelayMs)) throw new PlanError(`${field}.tokenDelayMs`, 'must be a number >= 0');
  if (reply.toolCall !== undefined) {
    const tc = reply.toolCall;
    if (!isObject(tc) || typeof tc.name !== 'string' || !isObject(tc.arguments)) {
      throw new PlanError(`${field}.toolCall`, 'must be { name: string, arguments: object }');
    }
  }
  return reply as ReplyOptions;
}

function validateFault(fault: unknown, field: string, weighted: boolean): WeightedFault {
  if (!isObject(fault)) throw new PlanError(field, 'must be an object');
  const common = weighted ? ['type', 'weight'] : ['type'];
  if (weighted && fault.weight !== undefined && !isNonNegNumber(fault.weight)) throw new PlanError(`${field}.weight`, 'must be a number >= 0');
  switch (fault.type) {
    case 'status':
      checkKeys(fault, [...common, 'status', 'retryAfter', 'retryAfterMs', 'message', 'echoRequest'], field);
      if (fault.echoRequest !== undefined && typeof fault.echoRequest !== 'boolean') throw new PlanError(`${field}.echoRequest`, 'must be a boolean');
      if (!(Number.isInteger(fault.status) && (fault.status as number) >= 400 && (fault.status as number) <= 599)) {
        throw new PlanError(`${field}.status`, 'must be an integer HTTP error status (400..599)');
      }
      if (fault.retryAfter !== undefined && !isNonNegNumber(fault.retryAfter) && typeof fault.retryAfter !== 'string') {
        throw new PlanError(`${field}.retryAfter`, 'must be seconds (number) or an HTTP date (string)');
      }
      if (fault.retryAfterMs !== undefined && !isNonNegNumber(fault.retryAfterMs)) throw new PlanError(`${field}.retryAfterMs`, 'must be a number >= 0');
      if (fault.message !== undefined && typeof fault.message !== 'string') throw new PlanError(`${field}.message`, 'must be a string');
      break;
    case 'reset':
      checkKeys(fault, [...common, 'afterHeaders'], field);
      if (fault.afterHeaders !== undefined && typeof fault.afterHeaders !== 'boolean') throw new PlanError(`${field}.afterHeaders`, 'must be a boolean');
      break;
    case 'stall':
      checkKeys(fault, [...common, 'afterChunks', 'beforeHeaders'], field);
      if (fault.afterChunks !== undefined && !(Number.isInteger(fault.afterChunks) && (fault.afterChunks as number) >= 0)) {
        throw new PlanError(`${field}.afterChunks`, 'must be an integer >= 0');
      }
      if (fault.beforeHeaders !== undefined && typeof fault.beforeHeaders !== 'boolean') throw new PlanError(`${field}.beforeHeaders`, 'must be a boolean');
      break;
    case 'malformed':
      checkKeys(fault, common, field);
      break;
    case 'error_event':
      checkKeys(fault, [...common, 'afterChunks', 'echoRequest'], field);
      if (fault.afterChunks !== undefined && !(Number.isInteger(fault.afterChunks) && (fault.afterChunks as number) >= 0)) {
        throw new PlanError(`${field}.afterChunks`, 'must be an integer >= 0');
      }
      if (fault.echoRequest !== undefined && typeof fault.echoRequest !== 'boolean') throw new PlanError(`${field}.echoRequest`, 'must be a boolean');
      break;
    default:
      throw new PlanError(`${field}.type`, "must be one of 'status', 'reset', 'stall', 'malformed', 'error_event'");
  }
  return fault as WeightedFault;
}

function validateRule(rule: unknown, field: string): BehaviorRule {
  if (!isObject(rule)) throw new PlanError(field, 'must be an object');
  checkKeys(rule, ['model', 'api', 'stream', 'times', 'probability', 'latencyMs', 'fault', 'mix', 'reply'], field);
  const { model, api, stream, times, probability, latencyMs, fault, mix, reply } = rule;
  if (model !== undefined && typeof model !== 'string' && !(Array.isArray(model) && model.every((m) => typeof m === 'string'))) {
    throw new PlanError(`${field}.model`, 'must be a string or an array of strings');
  }
  if (api !== undefined && !FAKE_APIS.includes(api as FakeApi)) throw new PlanError(`${field}.api`, `must be one of ${FAKE_APIS.map((a) => `'${a}'`).join(', ')}`);
  if (stream !== undefined && typeof stream !== 'boolean') throw new PlanError(`${field}.stream`, 'must be a boolean');
  if (times !== undefined && !(Number.isInteger(times) && (times as number) >= 0)) throw new PlanError(`${field}.times`, 'must be an integer >= 0');
  if (probability !== undefined && !(isNonNegNumber(probability) && probability <= 1)) throw new PlanError(`${field}.probability`, 'must be a number in [0, 1]');
  if (latencyMs !== undefined) {
    const ok = isNonNegNumber(latencyMs) || (Array.isArray(latencyMs) && latencyMs.length === 2 && latencyMs.every(isNonNegNumber) && latencyMs[0] <= latencyMs[1]);
    if (!ok) throw new PlanError(`${field}.latencyMs`, 'must be a number >= 0 or a [min, max] range');
  }
  if (fault !== undefined) validateFault(fault, `${field}.fault`, false);
  if (mix !== undefined) {
    if (!Array.isArray(mix) || mix.length === 0) throw new PlanError(`${field}.mix`, 'must be a non-empty array of faults');
    mix.forEach((f, i) => validateFault(f, `${field}.mix[${i}]`, true));
    if (mix.reduce((s: number, f: WeightedFault) => s + (f.weight ?? 1), 0) <= 0) throw new PlanError(`${field}.mix`, 'weights must not all be 0');
  }
  if (reply !== undefined) validateReply(reply, `${field}.reply`);
  return rule as BehaviorRule;
}

/** Checks a plan (from a test or from the admin API) and returns it typed; throws {@link PlanError}. */
export function validatePlan(plan: unknown): BehaviorPlan {
  if (!isObject(plan)) throw new PlanError('plan', 'must be a JSON object');
  checkKeys(plan, ['seed', 'reply', 'rules'], '');
  if (plan.seed !== undefined && !Number.isInteger(plan.seed)) throw new PlanError('seed', 'must be an integer');
  if (plan.reply !== undefined) validateReply(plan.reply, 'reply');
  if (plan.rules !== undefined) {
    if (!Array.isArray(plan.rules)) throw new PlanError('rules', 'must be an array');
    plan.rules.forEach((r, i) => validateRule(r, `rules[${i}]`));
  }
  return plan as BehaviorPlan;
}

/** The live state of a plan: rule counters and the RNG. */
export class Behavior {
  private readonly random: () => number;
  private readonly remaining: Array<number | undefined>;

  constructor(readonly plan: BehaviorPlan = {}) {
    this.random = seededRandom(plan.seed ?? 1);
    this.remaining = (plan.rules ?? []).map((r) => r.times);
  }

  /** Consults the rules for one request. */
  decide(api: FakeApi, model: string, stream: boolean): Decision {
    const rules = this.plan.rules ?? [];
    for (let i = 0; i < rules.length; i++) {
      const rule = rules[i];
      if (rule.api !== undefined && rule.api !== api) continue;
      if (rule.stream !== undefined && rule.stream !== stream) continue;
      if (rule.model !== undefined && (typeof rule.model === 'string' ? rule.model !== model : !rule.model.includes(model))) continue;
      const left = this.remaining[i];
      if (left !== undefined && left <= 0) continue;
      if (rule.probability !== undefined && this.random() >= rule.probability) continue;
      if (left !== undefined) this.remaining[i] = left - 1;
      return {
        latencyMs: this.latency(rule.latencyMs),
        fault: rule.mix ? this.pick(rule.mix) : rule.fault,
        reply: rule.reply ? { ...this.plan.reply, ...rule.reply } : (this.plan.reply ?? {}),
      };
    }
    return { latencyMs: 0, fault: undefined, reply: this.plan.reply ?? {} };
  }

  private latency(spec: number | [number, number] | undefined): number {
    if (spec === undefined) return 0;
    if (typeof spec === 'number') return spec;
    return spec[0] + this.random() * (spec[1] - spec[0]);
  }

  private pick(mix: WeightedFault[]): Fault {
    const total = mix.reduce((s, f) => s + (f.weight ?? 1), 0);
    let roll = this.random() * total;
    for (const f of mix) {
      roll -= f.weight ?? 1;
      if (roll < 0) return f;
    }
    return mix[mix.length - 1];
  }
}
