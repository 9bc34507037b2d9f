/**
 * The console's only way to the data: the public API with the admin key the user signed in
 * with. The key lives in sessionStorage (gone with the tab, never in a URL, never logged); a
 * 401 from any call signs the user out (a revoked or removed key ends the session).
 */

const KEY_STORAGE = 'promptmesh.console.key';

/** The API's root: the console lives at `<root>/console/`, the API at `<root>/v1/`, also behind a path prefix. */
const apiRoot = new URL('../', document.baseURI);

/** An error answer of the API, in its OpenAI shape. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly param: string | null = null,
    readonly code: string | null = null,
  ) {
    super(message);
  }
}

type SignedOutListener = (reason: string) => void;
const signedOutListeners = new Set<SignedOutListener>();

/** Calls `listener` when the session ends because the API refused the key. */
export function onSignedOut(listener: SignedOutListener): () => void {
  signedOutListeners.add(listener);
  return () => signedOutListeners.delete(listener);
}

export function currentKey(): string | null {
  return sessionStorage.getItem(KEY_STORAGE);
}

export function signOut(reason = ''): void {
  sessionStorage.removeItem(KEY_STORAGE);
  for (const l of signedOutListeners) l(reason);
}

async function errorOf(res: Response): Promise<ApiError> {
  let body: { error?: { message?: string; param?: string | null; code?: string | null } } | undefined;
  try {
    body = (await res.json()) as typeof body;
  } catch {
    body = undefined;
  }
  return new ApiError(res.status, body?.error?.message ?? `${res.status} ${res.statusText}`, body?.error?.param ?? null, body?.error?.code ?? null);
}

async function send(method: string, path: string, body: unknown, key: string | null, signal?: AbortSignal): Promise<Response> {
  const headers: Record<string, string> = { accept: 'application/json' };
  if (key) headers.authorization = `Bearer ${key}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(new URL(path.replace(/^\//, ''), apiRoot), {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    cache: 'no-store',
    credentials: 'omit',
    signal,
  });
  if (res.status === 401 && key !== null) {
    const err = await errorOf(res);
    signOut(`Signed out: the API no longer accepts this key (${err.message}).`);
    throw err;
  }
  if (!res.ok) throw await errorOf(res);
  return res;
}

/** One API call with the signed-in key; resolves to the JSON answer. */
export async function api<T>(method: string, path: string, body?: unknown): Promise<T> {
  const res = await send(method, path, body, currentKey());
  return (await res.json()) as T;
}

/**
 * Signs in: the key must be accepted for an admin route (`GET /v1/providers`); only then is it
 * kept. Throws the API's error otherwise.
 */
export async function signIn(key: string): Promise<void> {
  const checked = await fetch(new URL('v1/providers', apiRoot), { headers: { authorization: `Bearer ${key}` }, cache: 'no-store', credentials: 'omit' });
  if (!checked.ok) {
    const err = await errorOf(checked);
    if (checked.status === 403) throw new ApiError(403, `This key lacks the admin scope the console needs (${err.message}).`);
    throw err;
  }
  sessionStorage.setItem(KEY_STORAGE, key);
}

/**
 * Streams a chat completion: yields each content delta as it arrives (server-sent events of
 * the OpenAI shape), and finally the usage when the API sends it.
 */
export async function* streamChat(body: Record<string, unknown>, signal: AbortSignal): AsyncGenerator<{ delta?: string; usage?: Record<string, number>; version?: string }> {
  const res = await send('POST', '/v1/chat/completions', { ...body, stream: true, stream_options: { include_usage: true } }, currentKey(), signal);
  const version = res.headers.get('x-promptmesh-prompt-version') ?? undefined;
  if (version) yield { version };
  const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  while (true) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value;
    let end: number;
    while ((end = buffer.indexOf('\n\n')) !== -1) {
      const event = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      for (const line of event.split('\n')) {
        if (!line.startsWith('data:')) continue;
        const data = line.slice(5).trim();
        if (data === '[DONE]') return;
        const chunk = JSON.parse(data) as {
          error?: { message: string };
          choices?: Array<{ delta?: { content?: string } }>;
          usage?: Record<string, number> | null;
        };
        if (chunk.error) throw new ApiError(502, chunk.error.message);
        const delta = chunk.choices?.[0]?.delta?.content;
        if (delta) yield { delta };
        if (chunk.usage) yield { usage: chunk.usage };
      }
    }
  }
}

// ---- the API's shapes the console reads (see docs/templates.md, docs/router.md) ----

export interface SplitEntry {
  version: number;
  weight: number;
}

export type TemplateMessage = { role: string; content: string };

export interface TemplateSummary {
  name: string;
  latest_version: number;
  description: string | null;
  labels: Record<string, SplitEntry[]>;
  archived: boolean;
  created_at: string;
  updated_at: string;
}

export interface TemplateVersion {
  name: string;
  version: number;
  type: 'text' | 'chat';
  template: string | TemplateMessage[];
  variables: string[];
  description: string | null;
  model: string | null;
  created_at: string;
  created_by: string;
}

export interface VersionList {
  name: string;
  archived: boolean;
  latest_version: number;
  labels: Record<string, SplitEntry[]>;
  data: TemplateVersion[];
  has_more: boolean;
}

export interface LabelMove {
  from: SplitEntry[] | null;
  to: SplitEntry[];
  actor: string;
  at: string;
}

export interface StatsPoint {
  t: number;
  requests: number;
  errors: number;
  cost_usd: number;
  latency_ms_mean: number | null;
}

export interface StatsFigures {
  requests: number;
  errors: number;
  error_rate: number;
  cost_usd: number;
  latency_ms: { mean: number | null; p50: number | null; p95: number | null; p99: number | null };
  points: StatsPoint[];
}

export interface PromptStats {
  prompt: string;
  from: number;
  to: number;
  versions: Array<StatsFigures & { version: number }>;
}

export interface ProviderStats {
  from: number;
  to: number;
  providers: Array<StatsFigures & { provider: string }>;
}

export interface ProviderStatus {
  name: string;
  type: string;
  baseUrl: string;
  models: string[];
  circuit: { state: 'closed' | 'half-open' | 'open'; consecutiveFailures: number; failureRate: number | null; openedAt: string | null; retryInMs: number | null; opens: number };
  latencyMs: Record<string, number>;
  limits: { rpm: number | null; tpm: number | null; concurrency: number | null };
}

export interface ProvidersAnswer {
  data: ProviderStatus[];
  aliases?: Record<string, Array<{ provider: string; model: string; weight: number }>>;
}

/** Every template (all pages), archived ones too: the list page searches and filters them. */
export async function allTemplates(): Promise<TemplateSummary[]> {
  const out: TemplateSummary[] = [];
  let cursor: string | null = null;
  do {
    const q = new URLSearchParams({ limit: '200', include_archived: 'true' });
    if (cursor) q.set('cursor', cursor);
    const page: { data: TemplateSummary[]; next_cursor: string | null } = await api('GET', `/v1/templates?${q}`);
    out.push(...page.data);
    cursor = page.next_cursor;
  } while (cursor);
  return out;
}

/** Every version of a template, oldest first. */
export async function allVersions(name: string): Promise<VersionList> {
  const enc = encodeURIComponent(name);
  const first: VersionList = await api('GET', `/v1/templates/${enc}/versions?limit=200`);
  let page = first;
  while (page.has_more && page.data.length > 0) {
    page = await api('GET', `/v1/templates/${enc}/versions?limit=200&after=${page.data[page.data.length - 1]!.version}`);
    first.data.push(...page.data);
  }
  return first;
}

// ---- keys, teams and spend (docs/keys.md) ----

/** A key as `GET /v1/keys` lists it (never its secret). */
export interface KeyInfo {
  id: string;
  name: string;
  /** The secret's first characters, for recognition; null for file keys. */
  prefix: string | null;
  source: 'api' | 'file';
  read_only?: boolean;
  scopes: string[];
  models: string[] | null;
  rpm: number | null;
  tpm: number | null;
  max_concurrent: number | null;
  budget: Budget | null;
  team: string | null;
  expires_at: string | null;
  previous_key_valid_until: string | null;
  created_at: string | null;
  revoked_at: string | null;
}

/** What create and rotate answer: the key and, this once, its secret. */
export type KeyWithSecret = KeyInfo & { key: string };

export interface Budget {
  usd: number;
  period: 'day' | 'month';
}

export interface TeamInfo {
  id: string;
  name: string;
  budget: Budget | null;
  rpm: number | null;
  tpm: number | null;
  max_concurrent: number | null;
}

/** The ways the spend API groups rows (the console charts all but `day`, its time axis). */
export type SpendGroup = 'key' | 'team' | 'model' | 'prompt';

/** One row of `GET /v1/spend`: the group's value under its own name (`key`, `team`, ...). */
export interface SpendRow {
  [group: string]: string | number | null | undefined;
  /** The bucket's start (ISO) when the query asked for an `interval`. */
  start?: string;
  usd: number;
  micro_usd: number;
  input_tokens: number;
  cached_input_tokens: number;
  output_tokens: number;
  requests: number;
}

export interface SpendAnswer {
  group_by: string;
  interval?: 'hour' | 'day';
  from: string;
  to: string;
  data: SpendRow[];
}

/** Spend grouped by `group` over [from, to), in `interval` buckets when given. */
export function spend(group: SpendGroup, from: Date, to: Date, interval?: 'hour' | 'day'): Promise<SpendAnswer> {
  const q = new URLSearchParams({ group_by: group, from: from.toISOString(), to: to.toISOString() });
  if (interval) q.set('interval', interval);
  return api('GET', `/v1/spend?${q}`);
}

/** The current budget period (a UTC day, or a UTC month), as the ledger counts it: [start, end). */
export function budgetPeriod(period: 'day' | 'month', now = new Date()): { start: Date; end: Date } {
  const y = now.getUTCFullYear();
  const m = now.getUTCMonth();
  const d = now.getUTCDate();
  return period === 'day' ? { start: new Date(Date.UTC(y, m, d)), end: new Date(Date.UTC(y, m, d + 1)) } : { start: new Date(Date.UTC(y, m, 1)), end: new Date(Date.UTC(y, m + 1, 1)) };
}

/**
 * The current period's spend of every key or team with a budget, in USD by id: one spend query
 * per period in use (the rows the ledger keeps in PostgreSQL, the same the budget counts).
 */
export async function budgetUsage(group: 'key' | 'team', budgets: Array<{ id: string; budget: Budget | null }>): Promise<Map<string, number>> {
  const periods = [...new Set(budgets.flatMap((b) => (b.budget ? [b.budget.period] : [])))];
  const out = new Map<string, number>();
  const now = new Date();
  const answers = await Promise.all(
    periods.map(async (p) => {
      const { start, end } = budgetPeriod(p, now);
      return [p, await spend(group, start, end)] as const;
    }),
  );
  for (const [period, answer] of answers) {
    const want = new Set(budgets.filter((b) => b.budget?.period === period).map((b) => b.id));
    for (const row of answer.data) {
      const id = row[group];
      if (typeof id === 'string' && want.has(id)) out.set(id, row.micro_usd / 1e6);
    }
  }
  return out;
}
