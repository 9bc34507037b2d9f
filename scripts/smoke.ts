/**
 * `npm run smoke -- --url <router url> --key <api key>`: checks a running promptmesh end to end
 * through its router, the way a user would after a deploy. It creates a throwaway template,
 * runs a plain, a streaming and a session completion with the official `openai` SDK, checks the
 * metrics endpoint, and cleans up (archives the template, deletes the session), printing each
 * step with PASS, FAIL or SKIP. Exits 1 when any step failed, 2 on bad arguments.
 *
 * Against a deployment (an `https://` URL) it also checks the public surface: HTTPS answers
 * with a certificate the system trusts, plain HTTP is redirected to HTTPS, and `/metrics`,
 * `/readyz` and `/healthz` are not reachable from outside. With `--kube-context` it runs
 * `kubectl exec` in the cluster to prove a NetworkPolicy denies a flow (context -> the internet)
 * while an allowed one (context -> Redis) still works.
 *
 * Options: --url (or PROMPTMESH_URL), --key (or PROMPTMESH_API_KEY; needs the invoke and admin
 * scopes), --model (default: `chat` when listed, else the first model), --metrics-url (default:
 * <url>/metrics for an http:// URL; a deployment does not expose it: point this at a
 * port-forward), --http-url (where plain HTTP is expected to redirect; default: the URL with
 * http://), --kube-context and --namespace (default promptmesh) for the NetworkPolicy check.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { request as httpsRequest } from 'node:https';
import type { TLSSocket } from 'node:tls';
import OpenAI from 'openai';

/** What {@link runSmoke} needs. */
export interface SmokeOptions {
  /** The router's base URL, e.g. `https://promptmesh.example.com`. */
  url: string;
  /** An API key with the `invoke` and `admin` scopes; undefined when auth is off. */
  key?: string;
  /** The model to ask. @default `chat` when listed, else the first listed model */
  model?: string;
  /** Where the router's metrics are. @default `<url>/metrics` for an http:// URL, else skipped */
  metricsUrl?: string;
  /** Where plain HTTP should redirect from (https URLs only). @default the URL with `http://` */
  httpUrl?: string;
  /** A kube context: run the NetworkPolicy check with kubectl there. @default undefined (skipped) */
  kubeContext?: string;
  /** The app's namespace, for the NetworkPolicy check. @default 'promptmesh' */
  namespace?: string;
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

  function skip(name: string, why: string): void {
    print(`SKIP  ${name}: ${why}`);
  }

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

  const deployed = base.startsWith('https://');
  if (deployed) {
    await step('HTTPS answers with a trusted certificate', async () => {
      const r = await httpsGet(`${base}/v1/models`, auth);
      check(r.status === 200, `GET /v1/models over HTTPS answered ${r.status}`);
      check(r.protocol === 'TLSv1.3' || r.protocol === 'TLSv1.2', `negotiated ${r.protocol}, expected TLS 1.2 or 1.3`);
      const days = Math.floor((Date.parse(r.validTo) - Date.now()) / 86_400_000);
      check(days > 0, `the certificate expired (${r.validTo})`);
      return `${r.protocol}, certificate valid for ${days} more days`;
    });
    await step('plain HTTP redirects to HTTPS', async () => {
      const httpUrl = (options.httpUrl ?? base.replace(/^https:/, 'http:').replace(/:\d+$/, '')).replace(/\/+$/, '');
      const res = await fetch(`${httpUrl}/v1/models`, { redirect: 'manual' });
      const location = res.headers.get('location') ?? '';
      check([301, 302, 307, 308].includes(res.status), `GET ${httpUrl}/v1/models answered ${res.status}, expected a redirect`);
      check(location.startsWith('https://'), `it redirects to ${JSON.stringify(location)}, not to https://`);
      return `${res.status} -> ${location}`;
    });
    await step('the control surface is not public (/metrics, /readyz, /healthz)', async () => {
      const open: string[] = [];
      for (const path of ['/metrics', '/readyz', '/healthz']) {
        const res = await fetch(`${base}${path}`, { redirect: 'manual' });
        await res.arrayBuffer();
        if (res.status < 300) open.push(`${path} (${res.status})`);
      }
      check(open.length === 0, `reachable from outside: ${open.join(', ')}`);
      return 'none answers through the public URL';
    });
  } else {
    skip('public surface (HTTPS, HTTP redirect, /metrics not public)', 'the URL is not https://; these checks are for a deployment');
  }
  if (options.kubeContext) {
    await step('a NetworkPolicy denies a flow (context -> the internet) and allows one (context -> Redis)', () =>
      networkPolicyCheck(options.kubeContext!, options.namespace ?? 'promptmesh'));
  } else {
    skip('NetworkPolicy check', 'give --kube-context to run it with kubectl in the cluster');
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

    const metricsUrl = options.metricsUrl ?? (deployed ? undefined : `${base}/metrics`);
    if (created && !metricsUrl) skip('metrics endpoint', 'a deployment does not expose /metrics: give --metrics-url (a port-forward to a router pod)');
    if (created && metricsUrl) await step('metrics endpoint', async () => {
      const res = await fetch(metricsUrl);
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

/** GET over HTTPS, keeping what fetch hides: the TLS version and the certificate's expiry. */
function httpsGet(url: string, headers: Record<string, string>): Promise<{ status: number; protocol: string; validTo: string }> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(url, { method: 'GET', headers, timeout: 30_000 }, (res) => {
      const socket = res.socket as TLSSocket;
      const result = { status: res.statusCode ?? 0, protocol: socket.getProtocol?.() ?? 'unknown', validTo: socket.getPeerCertificate?.()?.valid_to ?? '' };
      res.resume();
      res.on('end', () => resolve(result));
    });
    req.on('timeout', () => req.destroy(new Error(`no answer from ${url} in 30 s`)));
    req.on('error', reject);
    req.end();
  });
}

/** What the in-pod probe exits with. */
export const PROBE_EXIT = { reached: 0, blocked: 3 } as const;

/**
 * A Node one-liner run inside a pod: exits 0 when `host:port` answered (a TLS handshake, or any
 * bytes back after a PING), 3 when it did not within 5 s. A bare TCP connect proves nothing in
 * the mesh: the sidecar accepts every outbound connection locally, then fails it upstream.
 */
export function probeScript(kind: 'tls' | 'ping', host: string, port: number): string {
  const target = JSON.stringify({ host, port, servername: /^[\d.]+$/.test(host) ? undefined : host });
  return kind === 'tls'
    ? `const t=require('tls');const s=t.connect(${target},()=>process.exit(${PROBE_EXIT.reached}));s.on('error',()=>process.exit(${PROBE_EXIT.blocked}));setTimeout(()=>process.exit(${PROBE_EXIT.blocked}),5000);`
    : `const n=require('net');const s=n.connect(${target},()=>s.write('PING\\r\\n'));s.on('data',()=>process.exit(${PROBE_EXIT.reached}));s.on('error',()=>process.exit(${PROBE_EXIT.blocked}));s.on('close',()=>process.exit(${PROBE_EXIT.blocked}));setTimeout(()=>process.exit(${PROBE_EXIT.blocked}),5000);`;
}

/** The kubectl command that runs a probe in a Deployment's pod. */
export function kubectlProbe(context: string, namespace: string, deployment: string, script: string): string[] {
  return ['--context', context, '-n', namespace, 'exec', `deploy/${deployment}`, '--', 'node', '-e', script];
}

function runKubectl(args: string[]): Promise<{ code: number; stderr: string }> {
  return new Promise((resolve) => {
    execFile('kubectl', args, { timeout: 60_000 }, (err, _stdout, stderr) => {
      const code = err ? (typeof (err as NodeJS.ErrnoException & { code?: unknown }).code === 'number' ? (err as unknown as { code: number }).code : -1) : 0;
      resolve({ code, stderr: String(stderr).trim() });
    });
  });
}

async function networkPolicyCheck(context: string, namespace: string): Promise<string> {
  const allowed = await runKubectl(kubectlProbe(context, namespace, 'context-stable', probeScript('ping', `redis.${namespace}.svc.cluster.local`, 6379)));
  check(allowed.code === PROBE_EXIT.reached, `the allowed flow context -> redis:6379 did not get through (kubectl exit ${allowed.code}${allowed.stderr ? `: ${allowed.stderr.slice(0, 300)}` : ''}); the check cannot tell a policy from a broken exec`);
  const denied = await runKubectl(kubectlProbe(context, namespace, 'context-stable', probeScript('tls', '1.1.1.1', 443)));
  check(denied.code !== PROBE_EXIT.reached, 'context reached 1.1.1.1:443: its NetworkPolicy does not deny the internet (is the vpc-cni network policy agent on?)');
  check(denied.code === PROBE_EXIT.blocked, `the denied probe failed for another reason (kubectl exit ${denied.code}${denied.stderr ? `: ${denied.stderr.slice(0, 300)}` : ''})`);
  return 'context -> redis:6379 reached; context -> 1.1.1.1:443 blocked';
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
      if (!['url', 'key', 'model', 'metrics-url', 'http-url', 'kube-context', 'namespace', 'help'].includes(name)) throw new Error(`unknown option --${name}`);
    }
  } catch (err) {
    process.stderr.write(`smoke: ${(err as Error).message}\nusage: npm run smoke -- --url <router url> --key <api key> [--model <model>] [--metrics-url <url>] [--http-url <url>] [--kube-context <context> [--namespace <ns>]]\n`);
    process.exit(2);
  }
  if (args.help) {
    process.stdout.write('usage: npm run smoke -- --url <router url> --key <api key> [--model <model>] [--metrics-url <url>] [--http-url <url>] [--kube-context <context> [--namespace <ns>]]\n');
    process.exit(0);
  }
  const url = args.url ?? process.env.PROMPTMESH_URL;
  if (!url || !/^https?:\/\//.test(url)) {
    process.stderr.write('smoke: --url must be the router URL (http:// or https://), or set PROMPTMESH_URL\n');
    process.exit(2);
  }
  runSmoke({
    url, key: args.key ?? process.env.PROMPTMESH_API_KEY, model: args.model, metricsUrl: args['metrics-url'],
    httpUrl: args['http-url'], kubeContext: args['kube-context'], namespace: args.namespace,
  })
    .then(({ ok }) => process.exit(ok ? 0 : 1))
    .catch((err: unknown) => {
      process.stderr.write(`smoke: ${(err as Error)?.stack ?? String(err)}\n`);
      process.exit(1);
    });
}
