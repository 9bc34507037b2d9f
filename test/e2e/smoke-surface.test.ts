/**
 * `npm run smoke`'s post-deploy checks of the public surface, run for real: the all-in-one behind
 * a TLS-terminating front (a certificate made here with openssl, trusted through
 * NODE_EXTRA_CA_CERTS) that routes only `/v1/` as the gateway does, and a plain-HTTP listener
 * that redirects. Then the same against a front that leaks everything and does not redirect:
 * the checks must fail. The NetworkPolicy check needs a cluster; here it runs kubectl against a
 * kubeconfig without one and must fail (never pass), and its in-pod probe runs against local
 * sockets.
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer, request as httpRequest, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { createServer as createTcpServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { kubectlProbe, PROBE_EXIT, probeScript } from '../../scripts/smoke';
import { freePort } from '../support/net';
import { KEYS, startAllInOne, type Layout } from './support';

const ROOT = join(__dirname, '..', '..');

function smoke(args: string[], env: Record<string, string>): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'scripts/smoke.ts'), ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
    let out = '';
    child.stdout.on('data', (b: Buffer) => (out += b.toString()));
    child.stderr.on('data', (b: Buffer) => (out += b.toString()));
    child.once('exit', (code) => resolve({ code, out }));
  });
}

function listen(server: Server): Promise<number> {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as { port: number }).port)));
}

describe('npm run smoke: the public surface of a deployment', () => {
  let layout: Layout;
  let dir: string;
  let caEnv: Record<string, string>;
  let leaky = false;
  let httpsPort: number;
  let httpPort: number;
  const servers: Server[] = [];

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'pm-smoke-tls-'));
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2',
      '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')], { stdio: 'ignore' });
    caEnv = { NODE_EXTRA_CA_CERTS: join(dir, 'cert.pem') };
    layout = await startAllInOne();
    const upstream = new URL(layout.url);
    // The gateway's shape: TLS, only the public API routed (unless a test makes it leak).
    const front = createHttpsServer({ key: readFileSync(join(dir, 'key.pem')), cert: readFileSync(join(dir, 'cert.pem')) }, (req, res) => {
      if (!leaky && !req.url!.startsWith('/v1/')) {
        res.writeHead(404).end();
        return;
      }
      const proxied = httpRequest({ host: upstream.hostname, port: upstream.port, path: req.url, method: req.method, headers: req.headers }, (up) => {
        res.writeHead(up.statusCode ?? 502, up.headers);
        up.pipe(res);
      });
      proxied.on('error', () => res.writeHead(502).end());
      req.pipe(proxied);
    });
    servers.push(front);
    httpsPort = await listen(front);
    const redirect = createHttpServer((req, res) => {
      if (leaky) res.writeHead(200, { 'content-type': 'text/plain' }).end('plain http');
      else res.writeHead(301, { location: `https://127.0.0.1:${httpsPort}${req.url}` }).end();
    });
    servers.push(redirect);
    httpPort = await listen(redirect);
  }, 180_000);

  afterAll(async () => {
    for (const s of servers) s.close();
    await layout?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  }, 60_000);

  const args = () => ['--url', `https://127.0.0.1:${httpsPort}`, '--key', KEYS.admin, '--http-url', `http://127.0.0.1:${httpPort}`];

  it('passes: HTTPS answers, HTTP redirects, /metrics /readyz /healthz are not public, the API works through it', async () => {
    leaky = false;
    const { code, out } = await smoke(args(), caEnv);
    expect(out).not.toContain('FAIL');
    expect(out).toMatch(/PASS {2}HTTPS answers with a trusted certificate \(\d+ ms\): TLSv1\.[23], certificate valid for \d+ more days/);
    expect(out).toMatch(/PASS {2}plain HTTP redirects to HTTPS \(\d+ ms\): 301 -> https:\/\/127\.0\.0\.1:\d+\/v1\/models/);
    expect(out).toContain('PASS  the control surface is not public (/metrics, /readyz, /healthz)');
    for (const step of ['models are listed', 'plain completion with the template', 'streaming completion', 'template is archived']) expect(out).toContain(`PASS  ${step}`);
    expect(out).toContain('SKIP  metrics endpoint: a deployment does not expose /metrics');
    expect(out).toContain('SKIP  NetworkPolicy check: give --kube-context');
    expect(code).toBe(0);
  }, 180_000);

  it('fails when the control surface leaks and HTTP is served in the clear', async () => {
    leaky = true;
    try {
      const { code, out } = await smoke(args(), caEnv);
      expect(out).toMatch(/FAIL {2}plain HTTP redirects to HTTPS: GET http:\/\/127\.0\.0\.1:\d+\/v1\/models answered 200, expected a redirect/);
      expect(out).toContain('FAIL  the control surface is not public (/metrics, /readyz, /healthz): reachable from outside: /metrics (200), /readyz (200), /healthz (200)');
      expect(code).toBe(1);
    } finally {
      leaky = false;
    }
  }, 180_000);

  it('fails HTTPS when the certificate is not trusted', async () => {
    const { code, out } = await smoke(args(), {});
    expect(out).toMatch(/FAIL {2}HTTPS answers with a trusted certificate: .*(self.signed|certificate)/i);
    expect(code).toBe(1);
  }, 180_000);

  it('runs the NetworkPolicy check through kubectl only when asked, and fails (never passes) without a cluster', async () => {
    const kubeconfig = join(dir, 'empty-kubeconfig');
    writeFileSync(kubeconfig, 'apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\nusers: []\n');
    const { code, out } = await smoke([...args(), '--kube-context', 'no-such-cluster'], { ...caEnv, KUBECONFIG: kubeconfig });
    expect(out).toMatch(/FAIL {2}a NetworkPolicy denies a flow \(context -> the internet\) and allows one \(context -> Redis\): the allowed flow context -> redis:6379 did not get through \(kubectl exit 1: .*no-such-cluster/);
    expect(code).toBe(1);
    expect(kubectlProbe('ctx', 'promptmesh', 'context-stable', 'x')).toEqual(['--context', 'ctx', '-n', 'promptmesh', 'exec', 'deploy/context-stable', '--', 'node', '-e', 'x']);
  }, 180_000);

  it('probes in the pod by an exchange, not a bare connect: reached, silent and closed ports', async () => {
    // Asynchronous: the listeners below live in this process and must keep answering.
    const probe = (script: string, env: Record<string, string> = {}) => new Promise<number | null>((resolve) => {
      spawn(process.execPath, ['-e', script], { env: { ...process.env, ...env }, stdio: 'ignore' }).once('exit', (code) => resolve(code));
    });
    // The private Redis answers a PING: reached.
    expect(await probe(probeScript('ping', '127.0.0.1', layout.redis.port))).toBe(PROBE_EXIT.reached);
    // A listener that accepts and says nothing (what a sidecar does for a blocked upstream): blocked.
    const silent = createTcpServer((socket) => socket.on('error', () => undefined));
    const silentPort = await new Promise<number>((resolve) => silent.listen(0, '127.0.0.1', () => resolve((silent.address() as { port: number }).port)));
    try {
      expect(await probe(probeScript('ping', '127.0.0.1', silentPort))).toBe(PROBE_EXIT.blocked);
    } finally {
      silent.close();
    }
    expect(await probe(probeScript('ping', '127.0.0.1', await freePort()))).toBe(PROBE_EXIT.blocked);
    // TLS: a handshake with a trusted certificate is reached; an untrusted one is not.
    expect(await probe(probeScript('tls', '127.0.0.1', httpsPort), caEnv)).toBe(PROBE_EXIT.reached);
    expect(await probe(probeScript('tls', '127.0.0.1', httpsPort))).toBe(PROBE_EXIT.blocked);
  }, 60_000);
});
