/**
 * Redis Cluster re-forms after every pod restarted at once and came back on new addresses.
 *
 * The scripts run here are the ones in the synthesized ConfigMap, started the way the pod starts
 * them, against six real redis-server processes. Kubernetes is replaced by loopback addresses
 * (pod IPs: 127.0.0.2-7 before, 127.0.0.12-17 after) and a hosts file behind the script's
 * resolver hook (the headless Service's DNS). Nothing here touches the shared Redis on 6379.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { App, Chart } from 'cdk8s';
import { Cluster } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { waitFor } from '../../test/support/net';
import { Redis as RedisConstruct } from './redis';

const run = promisify(execFile);
const PASSWORD = 'reform-test-pass';
const BEFORE = ['127.0.0.2', '127.0.0.3', '127.0.0.4', '127.0.0.5', '127.0.0.6', '127.0.0.7'];
const AFTER = ['127.0.0.12', '127.0.0.13', '127.0.0.14', '127.0.0.15', '127.0.0.16', '127.0.0.17'];

/** Whether `port` can be bound on every address (so the same port serves every "pod"). */
function freeOnAll(port: number, addresses: string[]): Promise<boolean> {
  return addresses.reduce<Promise<boolean>>(
    (prev, host) =>
      prev.then(
        (ok) =>
          ok &&
          new Promise<boolean>((resolve) => {
            const srv = createServer();
            srv.once('error', () => resolve(false));
            srv.listen(port, host, () => srv.close(() => resolve(true)));
          }),
      ),
    Promise.resolve(true),
  );
}

/** A client port and a bus port free on all twelve addresses (and on 127.0.0.1, where a 0.0.0.0 listener shows). */
async function pickPorts(): Promise<{ port: number; bus: number }> {
  const all = ['127.0.0.1', ...BEFORE, ...AFTER];
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = 20000 + Math.floor(Math.random() * 20000);
    const bus = port + 10000;
    if ((await freeOnAll(port, all)) && (await freeOnAll(bus, all))) return { port, bus };
  }
  throw new Error('no free port pair on the loopback addresses');
}

describe('Redis Cluster after a full restart on new addresses (real redis-server, the synthesized scripts)', () => {
  const root = mkdtempSync(join(tmpdir(), 'pm-redis-reform-'));
  const procs: ChildProcess[] = [];
  const clients: Cluster[] = [];

  // The StatefulSet as synthesized: its ConfigMap (config and scripts) and the announced name.
  const app = new App();
  const chart = new Chart(app, 'reform', { namespace: 'pm' });
  const construct = new RedisConstruct(chart, 'redis', { mode: 'cluster' });
  const objects = chart.toJson();
  const configMap = objects.find((o: any) => o.kind === 'ConfigMap' && o.metadata.name === 'redis-config');
  const sts = objects.find((o: any) => o.kind === 'StatefulSet');
  const container = sts.spec.template.spec.containers.find((c: any) => c.name === 'redis');
  const announce: string = container.env.find((e: any) => e.name === 'REDIS_ANNOUNCE_HOSTNAME').value;
  // Pod i is the construct's node i (masters first, then their replicas), announcing its pod DNS name.
  const hosts = construct.nodes.map((n) => n.slice(0, n.lastIndexOf(':')));
  const hostOf = (i: number) => announce.replace('$(POD_NAME)', hosts[i]!.split('.')[0]!);

  writeFileSync(join(root, 'start.sh'), configMap.data['start.sh']);
  writeFileSync(join(root, 'bootstrap.sh'), configMap.data['bootstrap-cluster.sh']);
  // The config reads `dir /data`, which must exist where it is parsed; each pod's own data dir is
  // passed on the command line after it.
  writeFileSync(join(root, 'redis.conf'), configMap.data['redis.conf'].replaceAll(' /data', ` ${root}`));
  // The "DNS": a hosts file, and a resolver that answers like `getent hosts` from it.
  const hostsFile = join(root, 'hosts');
  const resolver = join(root, 'resolve.sh');
  writeFileSync(resolver, `#!/bin/sh\nawk -v h="$1" '$2 == h { print $1 " " $2; found = 1 } END { exit !found }' "${hostsFile}"\n`);
  chmodSync(resolver, 0o755);
  const publish = (ips: string[]) => writeFileSync(hostsFile, hosts.map((h, i) => `${ips[i]} ${h}`).join('\n') + '\n');

  afterAll(async () => {
    for (const c of clients) c.disconnect();
    await stopAll();
    rmSync(root, { recursive: true, force: true });
  });

  async function stopAll(): Promise<void> {
    const live = procs.splice(0).filter((p) => p.exitCode === null && p.signalCode === null);
    await Promise.all(
      live.map(
        (p) =>
          new Promise<void>((resolve) => {
            const timer = setTimeout(() => p.kill('SIGKILL'), 15_000);
            p.once('exit', () => {
              clearTimeout(timer);
              resolve();
            });
            p.kill('SIGTERM');
          }),
      ),
    );
  }

  const logs: string[] = Array.from({ length: 6 }, () => '');

  /** Starts pod `i` as the kubelet would run its container: `sh start.sh`, with its env. */
  function startPod(i: number, ip: string, ports: { port: number; bus: number }, resolverCommand: string, dnsWait = 30): ChildProcess {
    const data = join(root, `data-${i}`);
    const runDir = join(root, `run-${i}`);
    mkdirSync(data, { recursive: true });
    mkdirSync(runDir, { recursive: true });
    const proc = spawn(
      'sh',
      [
        join(root, 'start.sh'),
        // The pod's volume and its IP, moved onto this machine.
        '--bind', ip,
        // A pod has one address; on this machine, connections to 127.0.0.x would leave from
        // 127.0.0.1 and every node would see its peers at that one address.
        '--bind-source-addr', ip,
        '--port', String(ports.port),
        '--cluster-port', String(ports.bus),
        '--dir', data,
        '--cluster-config-file', join(data, 'nodes.conf'),
      ],
      {
        env: {
          PATH: process.env.PATH ?? '/usr/bin:/bin',
          REDIS_PASSWORD: PASSWORD,
          REDIS_ANNOUNCE_HOSTNAME: hostOf(i),
          REDIS_CONFIG_SOURCE: join(root, 'redis.conf'),
          REDIS_RUN_DIR: runDir,
          REDIS_NODES_CONF: join(data, 'nodes.conf'),
          REDIS_PEER_RESOLVER: resolverCommand,
          REDIS_PEER_DNS_WAIT_SECONDS: String(dnsWait),
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    const keep = (b: Buffer) => {
      logs[i] = (logs[i]! + b.toString()).slice(-20_000);
    };
    proc.stdout!.on('data', keep);
    proc.stderr!.on('data', keep);
    procs.push(proc);
    return proc;
  }

  const cli = (ip: string, port: number, ...args: string[]) =>
    run('redis-cli', ['-h', ip, '-p', String(port), ...args], { env: { ...process.env, REDISCLI_AUTH: PASSWORD }, timeout: 30_000 }).then((r) => r.stdout);
  const state = async (ip: string, port: number) => /cluster_state:(\w+)/.exec(await cli(ip, port, 'cluster', 'info'))?.[1];

  /** A cluster client as the services build it, with DNS answered from the hosts file. */
  function client(ips: string[], port: number): Cluster {
    const byName = new Map(hosts.map((h, i) => [h, ips[i]!]));
    const c = new Cluster([{ host: ips[0]!, port }], {
      redisOptions: { password: PASSWORD, connectTimeout: 10_000 },
      // The nodes announce host names (cluster-preferred-endpoint-type hostname); the hosts file answers them.
      natMap: (key: string) => {
        const at = key.lastIndexOf(':');
        const host = key.slice(0, at);
        return { host: byName.get(host) ?? host, port: Number(key.slice(at + 1)) };
      },
      clusterRetryStrategy: (times) => (times > 60 ? null : 500),
      slotsRefreshTimeout: 10_000,
    });
    clients.push(c);
    return c;
  }

  it('forms on 127.0.0.2-7, cannot reach its peers with stale addresses, and re-forms and serves its data again once start.sh re-resolves the peers', async () => {
    const ports = await pickPorts();
    const { port } = ports;

    // 1. First start: pods on 127.0.0.2-7, created by the bootstrap script.
    publish(BEFORE);
    BEFORE.forEach((ip, i) => startPod(i, ip, ports, resolver));
    for (const ip of BEFORE) await waitFor(async () => (await cli(ip, port, 'ping')).trim() === 'PONG', 90_000, `redis on ${ip}`);
    const boot = await run('sh', [join(root, 'bootstrap.sh')], {
      env: {
        PATH: process.env.PATH ?? '',
        REDISCLI_AUTH: PASSWORD,
        REDIS_CLUSTER_NODES: BEFORE.map((ip) => `${ip}:${port}`).join(' '),
        REDIS_CLUSTER_REPLICAS: '1',
        REDIS_PEER_RESOLVER: resolver,
      },
      timeout: 150_000,
    }).catch((e: { stdout?: string; stderr?: string; message: string }) => {
      throw new Error(`the bootstrap script failed: ${e.message}\n${e.stdout ?? ''}\n${e.stderr ?? ''}\n${logs.join('\n---\n').slice(-4000)}`);
    });
    expect(boot.stdout).toMatch(/cluster_state:ok, 6 nodes, 3 masters/);
    expect(hosts.map((_, i) => hostOf(i))).toEqual(hosts);
    // Each master's replica is the other pod of its shard (node 3+k replicates node k).
    const pairs = async (ips: string[]) => {
      const lines = (await cli(ips[0]!, port, 'cluster', 'nodes')).trim().split('\n').map((l) => l.split(' '));
      const at = (ip: string) => lines.find((f) => f[1]!.startsWith(`${ip}:${port}@`))!;
      return [0, 1, 2].map((k) => at(ips[3 + k]!)[3] === at(ips[k]!)[0] && at(ips[3 + k]!)[2]!.includes('slave'));
    };
    await waitFor(async () => (await pairs(BEFORE)).every(Boolean), 90_000, 'replicas paired with their shard masters');
    // Every node learns every other node's announced name by gossip (it is what start.sh reads later).
    for (const ip of BEFORE) {
      const named = async () => (await cli(ip, port, 'cluster', 'nodes')).split('\n').filter((l) => hosts.some((h) => l.includes(`,${h} `))).length;
      await waitFor(async () => (await named()) === 6, 90_000, `host names known on ${ip}`);
    }

    const before = client(BEFORE, port);
    for (let k = 0; k < 200; k++) await before.set(`reform:${k}`, `v${k}`);
    const masters = before.nodes('master');
    expect(masters).toHaveLength(3);
    // Writes reached every master, and each master's replica has them (WAIT: acknowledged by 1 replica).
    for (const m of masters) {
      expect(await m.dbsize()).toBeGreaterThan(0);
      expect(await m.call('WAIT', '1', '30000')).toBe(1);
    }
    before.disconnect();

    // 2. Every pod stops at once; the volumes (data dirs with nodes.conf and the AOF) stay.
    await stopAll();
    for (let i = 0; i < 6; i++) expect(readFileSync(join(root, `data-${i}`, 'nodes.conf'), 'utf8')).toContain(`${BEFORE[i]}:${port}@`);

    // 3. The pods come back on new IPs, but the peers cannot be resolved: nodes.conf keeps the
    //    stale IPs, and the cluster cannot re-form. This is the failure the rewrite fixes.
    publish(AFTER);
    const nowhere = join(root, 'resolve-nothing.sh');
    writeFileSync(nowhere, '#!/bin/sh\nexit 2\n');
    chmodSync(nowhere, 0o755);
    AFTER.forEach((ip, i) => startPod(i, ip, ports, nowhere, 0));
    for (const ip of AFTER) await waitFor(async () => (await cli(ip, port, 'ping')).trim() === 'PONG', 90_000, `redis on ${ip}`);
    // The bus cannot reach a single peer: each node still lists the others at their old
    // addresses, and flags every one of them as failing (`fail?` or `fail`). Gossip, failure
    // detection and failover are dead until the addresses are right again.
    for (const [i, ip] of AFTER.entries()) {
      const peers = async () => (await cli(ip, port, 'cluster', 'nodes')).trim().split('\n').filter((l) => !l.includes('myself')).map((l) => l.split(' '));
      await waitFor(async () => (await peers()).every((f) => f[2]!.split(',').some((flag) => flag === 'fail?' || flag === 'fail')), 90_000, `redis-${i} flags its peers as failing`);
      const known = await peers();
      expect(known, `peers known to redis-${i}`).toHaveLength(5);
      for (const f of known) expect(BEFORE.some((old) => f[1]!.startsWith(`${old}:${port}@`)), `stale address in ${f.join(' ')}`).toBe(true);
    }
    await stopAll();

    // 4. The same restart with the resolver answering: start.sh rewrites nodes.conf, the cluster re-forms.
    AFTER.forEach((ip, i) => startPod(i, ip, ports, resolver));
    for (const ip of AFTER) await waitFor(async () => (await cli(ip, port, 'ping')).trim() === 'PONG', 90_000, `redis on ${ip}`);
    for (let i = 0; i < 6; i++) {
      const conf = readFileSync(join(root, `data-${i}`, 'nodes.conf'), 'utf8');
      for (const ip of BEFORE) expect(conf, `nodes.conf of redis-${i}`).not.toContain(`${ip}:${port}@`);
      expect(logs[i]).toMatch(new RegExp(`${hostOf((i + 1) % 6).replaceAll('.', '\\.')} moved from ${BEFORE[(i + 1) % 6]!.replaceAll('.', '\\.')} to ${AFTER[(i + 1) % 6]!.replaceAll('.', '\\.')}`));
    }
    for (const ip of AFTER) {
      await waitFor(async () => (await state(ip, port)) === 'ok', 120_000, `cluster_state:ok on ${ip}`);
      const info = await cli(ip, port, 'cluster', 'info');
      expect(info).toMatch(/cluster_known_nodes:6/);
      expect(info).toMatch(/cluster_slots_ok:16384/);
    }
    const nodes = (await cli(AFTER[0]!, port, 'cluster', 'nodes')).trim().split('\n');
    expect(nodes).toHaveLength(6);
    for (const line of nodes) {
      expect(line).not.toMatch(/fail|handshake|noaddr/);
      expect(line.split(' ')[7]).toBe('connected');
      expect(AFTER.some((ip) => line.includes(` ${ip}:${port}@`))).toBe(true);
    }

    expect(await pairs(AFTER)).toEqual([true, true, true]);
    const after = client(AFTER, port);
    const values = await Promise.all(Array.from({ length: 200 }, (_, k) => after.get(`reform:${k}`)));
    expect(values).toEqual(Array.from({ length: 200 }, (_, k) => `v${k}`));
    await after.set('reform:after', 'written after the restart');
    expect(await after.get('reform:after')).toBe('written after the restart');
  }, 900_000);
});
