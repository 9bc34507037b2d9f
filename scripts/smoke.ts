/**
 * `npm run smoke -- --url <router url> --key <api key>`: checks a running promptmesh end to end
 * through its router, the way a user would after a deploy. It creates a throwaway template,
 * runs a plain, a streaming and a session completion with the official `openai` SDK, checks the
 * metrics endpoint, and cleans up (archives the template, deletes the session), printing each
 * step with PASS or FAIL. Exits 1 when any step failed, 2 on bad arguments.
 *
 * Options: --url (or PROMPTMESH_URL), --key (or PROMPTMESH_API_KEY; needs the invoke and admin
 * scopes), --model (default: `chat` when listed, else the first model), --metrics-url (default:
 * <url>/metrics; the ingress may not expose it, then point this at a port-forward).
 */
import { randomBytes } from 'node:crypto';
import OpenAI from 'openai';

/** What {@link runSmoke} needs. */
export interface SmokeOptions {
  /** The router's base URL, e.g. `https://promptmesh.example.com`. */
  url: string;
  /** An API key with the `invoke` and `admin` scopes; undefined when auth is off. */
  key?: string;
  /** The model to ask. @default `chat` when listed, else the first listed model */
  model?: string;
  /** Where the router's metrics are. @default `<url>/metrics` */
  metricsUrl?: string;
  /** Where each step's line goes. @default stdout */
  print?: (line: string) => void;
}

/** One step's outcome. */
export interface SmokeStep {
  name: string;
  ok: boolean;
  detail: string;
  ms: number;
}

class StepFailure extends Error {}

function check(condition: unknown, message: string): asserts condition {
  if (!condition) throw new StepFailure(message);
}

/** Runs the smoke test; resolves with every step (it never throws for a failed step). */
export async function runSmoke(options: SmokeOptions): Promise<{ ok: boolean; steps: SmokeStep[] }> {
  const base = options.url.replace(/\/+$/, '');
  const print = options.print ?? ((line: string) => process.stdout.write(`${line}\n`));
  const auth: Record<string, string> = options.key ? { authorization: `Bearer ${options.key}` } : {};
  const sdk = new OpenAI({ baseURL: `${base}/v1`, apiKey: options.key ?? 'unused', maxRetries: 1, timeout: 60_000 });
  const suffix = randomBytes(4).toString('hex');
  const template = `smoke-${suffix}`;
  const session = `smoke-${suffix}`;
  const steps: SmokeStep[] = [];
  let model = options.model;
  let created = false;
  let sessionUsed = false;

  async function step(name: string, fn: () => Promise<string>): Promise<boolean> {
    const started = Date.now();
    try {
      const detail = await fn();
      const s = { name, ok: true, detail, ms: Date.now() - started };
      steps.push(s);
      print(`PASS  ${name} (${s.ms} ms)${detail ? `: ${detail}` : ''}`);
      return true;
    } catch (err) {
      const detail = err instanceof OpenAI.APIError ? `${err.status ?? ''} ${err.message}` : (err as Error).message;
      steps.push({ name, ok: false, detail, ms: Date.now() - started });
      print(`FAIL  ${name}: ${detail}`);
      return false;
    }
  }

  async function http(method: string, path: string, body?: unknown): Promise<{ status: number; text: string }> {
    const res = await fetch(`${base}${path}`, {
      method,
      headers: body === undefined ? auth : { ...auth, 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: res.status, text: await res.text() };
  }

  const ready = await step('models are listed', async () => {
    const ids: string[] = [];
    for await (const m of sdk.models.list()) ids.push(m.id);
    check(ids.length > 0, 'GET /v1/models listed no model');
    model ??= ids.includes('chat') ? 'chat' : ids[0];
    check(ids.includes(model!), `model '${model}' is not listed (listed: ${ids.join(', ')})`);
    return `${ids.length} models, using '${model}'`;
  });

  if (ready) {
    await step('throwaway template is created', async () => {
      const r = await http('POST', '/v1/templates', {
        name: template,
        type: 'chat',
        description: 'created by npm run smoke; archived at the end',
        template: [
          { role: 'system', content: 'You are a smoke test. Answer in one short sentence about {{topic}}.' },
          { role: 'user', content: 'Say something about {{topic}}.' },
        ],
      });
      check(r.status === 201, `POST /v1/templates answered ${r.status}: ${r.text.slice(0, 300)}`);
      created = true;
      return template;
    });

    const body = (extra: Record<string, unknown>) => ({ model, prompt: { name: template, variables: { topic: 'smoke' } }, ...extra });
    // Without the template the completion steps cannot run; the failure above says why.
    if (!created) print('SKIP  completions and metrics (no template)');

    if (created) await step('plain completion with the template', async () => {
      // The router's cache learns about the template within about a second.
      let last: unknown;
      for (let i = 0; i < 30; i++) {
        try {
          const { data, response } = await sdk.chat.completions.create(body({}) as never).withResponse();
          const completion = data as OpenAI.Chat.ChatCompletion;
          const content = completion.choices?.[0]?.message?.content;
          check(typeof content === 'string' && content.length > 0, 'the completion has no content');
          check(response.headers.get('x-promptmesh-prompt-version') === '1', `x-promptmesh-prompt-version is ${response.headers.get('x-promptmesh-prompt-version')}, expected 1`);
          return `provider ${response.headers.get('x-promptmesh-provider')}, model ${response.headers.get('x-promptmesh-model')}, ${completion.usage?.total_tokens ?? '?'} tokens`;
        } catch (err) {
          last = err;
          if (!(err instanceof OpenAI.NotFoundError)) throw err;
          await new Promise((r) => setTimeout(r, 200));
        }
      }
      throw last;
    });

    if (created) await step('streaming completion', async () => {
      const stream = (await sdk.chat.completions.create(body({ stream: true }) as never)) as unknown as AsyncIterable<OpenAI.Chat.ChatCompletionChunk>;
      let chunks = 0;
      let text = '';
      let finish: string | null = null;
      for await (const chunk of stream) {
        chunks++;
        text += chunk.choices?.[0]?.delta?.content ?? '';
        finish = chunk.choices?.[0]?.finish_reason ?? finish;
      }
      check(chunks > 0 && text.length > 0, 'the stream carried no content');
      check(finish !== null, 'the stream ended without a finish_reason');
      return `${chunks} chunks, finish_reason ${finish}`;
    });

    if (created) await step('session completion over two turns', async () => {
      sessionUsed = true;
      await sdk.chat.completions.create(body({ session_id: session, messages: [{ role: 'user', content: 'first turn' }] }) as never);
      const { response } = await sdk.chat.completions.create(body({ session_id: session, messages: [{ role: 'user', content: 'second turn' }] }) as never).withResponse();
      const degraded = response.headers.get('x-promptmesh-degraded');
      check(!degraded, `the router answered without history (x-promptmesh-degraded: ${degraded})`);
      const r = await http('GET', `/v1/sessions/${session}/messages`);
      check(r.status === 200, `GET /v1/sessions/${session}/messages answered ${r.status}: ${r.text.slice(0, 300)}`);
      const stored = (JSON.parse(r.text) as { messages: unknown[] }).messages.length;
      check(stored === 4, `the session holds ${stored} messages, expected 4 (two turns)`);
      return `session ${session}, 4 messages stored`;
    });

    if (created) await step('metrics endpoint', async () => {
      const res = await fetch(options.metricsUrl ?? `${base}/metrics`);
      const text = await res.text();
      check(res.status === 200, `metrics answered ${res.status}`);
      check(text.includes('http_server_request_duration_seconds'), 'http_server_request_duration_seconds is missing');
      check(text.includes(`promptmesh_prompt_requests_total{prompt="${template}",version="1"}`), `promptmesh_prompt_requests_total has no series for ${template} (a router behind a load balancer may have several replicas; point --metrics-url at one)`);
      check(/promptmesh_template_cache_age_seconds \d/.test(text), 'promptmesh_template_cache_age_seconds is missing');
      return 'request, prompt and template cache metrics present';
    });
  }

  // Clean up whatever was made, even after a failure.
  if (created) {
    await step('template is archived', async () => {
      const r = await http('DELETE', `/v1/templates/${template}`);
      check(r.status === 200 || r.status === 204, `DELETE /v1/templates/${template} answered ${r.status}: ${r.text.slice(0, 300)}`);
      return template;
    });
  }
  if (sessionUsed) {
    await step('session is deleted', async () => {
      const r = await http('DELETE', `/v1/sessions/${session}`);
      check(r.status === 204 || r.status === 200, `DELETE /v1/sessions/${session} answered ${r.status}: ${r.text.slice(0, 300)}`);
      return session;
    });
  }
  const ok = steps.length > 0 && steps.every((s) => s.ok);
  print(ok ? `smoke test PASSED (${steps.length} steps)` : `smoke test FAILED (${steps.filter((s) => !s.ok).length} of ${steps.length} steps failed)`);
  return { ok, steps };
}

function parseArgs(argv: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const m = /^--([a-z-]+)(?:=(.*))?$/.exec(arg);
    if (!m) throw new Error(`unexpected argument ${JSON.stringify(arg)}`);
    if (m[1] === 'help') {
      out.help = '1';
      continue;
    }
    const value = m[2] ?? argv[++i];
    if (value === undefined) throw new Error(`--${m[1]} needs a value`);
    out[m[1]!] = value;
  }
  return out;
}

if (require.main === module) {
  let args: Record<string, string>;
  try {
    args = parseArgs(process.argv.slice(2));
    for (const name of Object.keys(args)) {
      if (!['url', 'key', 'model', 'metrics-url', 'help'].includes(name)) throw new Error(`unknown option --${name}`);
    }
  } catch (err) {
    process.stderr.write(`smoke: ${(err as Error).message}\nusage: npm run smoke -- --url <router url> --key <api key> [--model <model>] [--metrics-url <url>]\n`);
    process.exit(2);
  }
  if (args.help) {
    process.stdout.write('usage: npm run smoke -- --url <router url> --key <api key> [--model <model>] [--metrics-url <url>]\n');
    process.exit(0);
  }
  const url = args.url ?? process.env.PROMPTMESH_URL;
  if (!url || !/^https?:\/\//.test(url)) {
    process.stderr.write('smoke: --url must be the router URL (http:// or https://), or set PROMPTMESH_URL\n');
    process.exit(2);
  }
  runSmoke({ url, key: args.key ?? process.env.PROMPTMESH_API_KEY, model: args.model, metricsUrl: args['metrics-url'] })
    .then(({ ok }) => process.exit(ok ? 0 : 1))
    .catch((err: unknown) => {
      process.stderr.write(`smoke: ${(err as Error)?.stack ?? String(err)}\n`);
      process.exit(1);
    });
}
