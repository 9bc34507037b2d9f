import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { App, Chart } from 'cdk8s';
import { Cluster, Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { ENV } from '../../contracts';
import { freePort, waitFor } from '../../test/support/net';
import { validateManifests } from '../../test/support/k8s-validate';
import {
  BOOTSTRAP_SCRIPT,
  DEFAULT_REDIS_EXPORTER_IMAGE,
  DEFAULT_REDIS_IMAGE,
  Redis as RedisConstruct,
  START_SCRIPT,
  redisConfig,
  type RedisProps,
} from './redis';
import { expectRestricted, podSpecs, resolveEnv, workloads } from '../../test/support/data-store-manifests';

const run = promisify(execFile);

function synth(props: RedisProps = {}, namespace: string | undefined = 'pm'): { redis: RedisConstruct; objects: any[] } {
  const app = new App();
  const chart = new Chart(app, 'test', namespace ? { namespace } : {});
  const redis = new RedisConstruct(chart, 'redis', props);
  return { redis, objects: chart.toJson() };
}

const byKind = (objects: any[], kind: string) => objects.filter((o) => o.kind === kind);

describe('Redis construct', () => {
  it('standalone: one pod, persistence, pinned images, valid against the schemas', () => {
    const { redis, objects } = synth({ storageClass: 'gp3', storageSize: '20Gi' });
    expect(validateManifests(objects)).toEqual([]);
    const [sts] = byKind(objects, 'StatefulSet');
    expect(sts.spec.replicas).toBe(1);
    expect(sts.spec.volumeClaimTemplates[0].spec).toMatchObject({
      accessModes: ['ReadWriteOnce'],
      storageClassName: 'gp3',
      resources: { requests: { storage: '20Gi' } },
    });
    const images = sts.spec.template.spec.containers.map((c: any) => c.image);
    expect(images).toEqual([DEFAULT_REDIS_IMAGE, DEFAULT_REDIS_EXPORTER_IMAGE]);
    for (const image of images) expect(image).toMatch(/:[^:@]*\d+\.\d+\.\d+[^:@]*$/);
    expect(byKind(objects, 'Job')).toHaveLength(0);
    expect(redis.host).toBe('redis.pm.svc.cluster.local');
    expect(redis.clientEnv().map((e) => e.name)).toEqual(['PROMPTMESH_REDIS_PASSWORD', ENV.redisUrl]);
    expect(redis.clientEnv()[1]!.value).toBe('redis://:$(PROMPTMESH_REDIS_PASSWORD)@redis.pm.svc.cluster.local:6379');
    const cm = byKind(objects, 'ConfigMap')[0];
    expect(cm.data['redis.conf']).toContain('maxmemory 256mb\nmaxmemory-policy allkeys-lru\n');
    // Room for an AOF rewrite's fork: twice the data set fits under the limit, with 10% to spare.
    const limit = sts.spec.template.spec.containers[0].resources.limits.memory;
    expect(limit).toBe('640Mi');
    expect(2 * 256 * 2 ** 20).toBeLessThanOrEqual(0.9 * 640 * 2 ** 20);
    expect(cm.data['redis.conf']).toMatch(/^appendonly yes$/m);
    expect(cm.data['redis.conf']).not.toContain('cluster-enabled');
  });

  it('cluster: six pods, cluster config, bus port, a restricted bootstrap Job, REDIS_CLUSTER_NODES', () => {
    const { redis, objects } = synth({ mode: 'cluster', maxMemory: '256mb', maxMemoryPolicy: 'allkeys-lfu' });
    expect(validateManifests(objects)).toEqual([]);
    // One StatefulSet per shard: its pod 0 the master, pod 1 the replica, never in one zone.
    const sets = byKind(objects, 'StatefulSet');
    expect(sets.map((s) => s.metadata.name)).toEqual(['redis-0', 'redis-1', 'redis-2']);
    for (const [i, sts] of sets.entries()) {
      expect(sts.spec.replicas).toBe(2);
      expect(sts.spec.podManagementPolicy).toBe('Parallel');
      expect(sts.spec.serviceName).toBe('redis-headless');
      expect(sts.spec.selector.matchLabels).toEqual({ ...redis.selectorLabels, 'promptmesh.io/redis-shard': String(i) });
      expect(sts.spec.template.spec.containers[0].ports.map((p: any) => p.containerPort)).toEqual([6379, 16379]);
      expect(sts.spec.template.spec.affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution).toEqual([
        { labelSelector: { matchLabels: sts.spec.selector.matchLabels }, topologyKey: 'topology.kubernetes.io/zone' },
      ]);
    }
    const preferred = byKind(synth({ mode: 'cluster', replicaZone: 'preferred' }).objects, 'StatefulSet')[0].spec.template.spec.affinity.podAntiAffinity;
    expect(preferred.requiredDuringSchedulingIgnoredDuringExecution).toBeUndefined();
    expect(preferred.preferredDuringSchedulingIgnoredDuringExecution[0].podAffinityTerm.topologyKey).toBe('topology.kubernetes.io/zone');
    expect(byKind(synth().objects, 'StatefulSet')[0].spec.template.spec.affinity).toBeUndefined();
    const cm = byKind(objects, 'ConfigMap')[0];
    expect(cm.data['redis.conf']).toContain('cluster-enabled yes');
    expect(cm.data['redis.conf']).toContain('maxmemory 256mb\nmaxmemory-policy allkeys-lfu\n');
    const [job] = byKind(objects, 'Job');
    expect(job.spec.template.spec.containers[0].command).toEqual(['sh', '/etc/redis/bootstrap-cluster.sh']);
    expect(job.spec.template.metadata.labels['sidecar.istio.io/inject']).toBe('false');
    const nodesEnv = job.spec.template.spec.containers[0].env.find((e: any) => e.name === 'REDIS_CLUSTER_NODES');
    expect(nodesEnv.value.split(' ')).toHaveLength(6);
    // Masters (pod 0 of each shard) first, then their replicas in the same order: the bootstrap pairs node 3+k with node k.
    expect(redis.nodes.map((n) => n.split('.')[0])).toEqual(['redis-0-0', 'redis-1-0', 'redis-2-0', 'redis-0-1', 'redis-1-1', 'redis-2-1']);
    expect(redis.nodes[5]).toBe('redis-2-1.redis-headless.pm.svc.cluster.local:6379');
    const env = redis.clientEnv();
    expect(env.find((e) => e.name === ENV.redisClusterNodes)!.value).toBe(redis.nodes.join(','));
    const headless = byKind(objects, 'Service').find((s) => s.metadata.name === 'redis-headless');
    expect(headless.spec.clusterIP).toBe('None');
    expect(headless.spec.ports.map((p: any) => p.port)).toEqual([6379, 16379]);
    // More masters, more pods.
    expect(byKind(synth({ mode: 'cluster', masters: 4 }).objects, 'StatefulSet').map((s) => s.spec.replicas)).toEqual([2, 2, 2, 2]);
  });

  it('every pod (Redis, exporter, bootstrap Job) is restricted and has requests, limits and probes', () => {
    for (const mode of ['standalone', 'cluster'] as const) {
      const { objects } = synth({ mode });
      for (const spec of podSpecs(objects)) expectRestricted(spec);
      for (const w of workloads(objects)) {
        for (const c of w.spec.template.spec.containers) {
          if (w.kind === 'StatefulSet') {
            expect(c.readinessProbe, `${c.name} readiness`).toBeDefined();
            expect(c.livenessProbe, `${c.name} liveness`).toBeDefined();
          }
        }
        expect(w.spec.template.spec.automountServiceAccountToken).toBe(false);
      }
      const [sts] = byKind(objects, 'StatefulSet');
      expect(sts.spec.template.spec.topologySpreadConstraints.map((t: any) => t.topologyKey)).toEqual([
        'topology.kubernetes.io/zone',
        'kubernetes.io/hostname',
      ]);
    }
  });

  it('references the password Secret only: no Secret object, no password in any manifest', () => {
    const { redis, objects } = synth({ mode: 'cluster', passwordSecret: { name: 'my-redis', key: 'pw' } });
    expect(byKind(objects, 'Secret')).toHaveLength(0);
    const refs = JSON.stringify(objects).match(/"secretKeyRef":\{[^}]*\}/g) ?? [];
    expect(refs.length).toBeGreaterThanOrEqual(4);
    for (const r of refs) expect(JSON.parse(`{${r}}`).secretKeyRef).toMatchObject({ name: 'my-redis', key: 'pw' });
    // No env var carries a literal password; requirepass is only ever written at start.
    const text = JSON.stringify(objects);
    expect(text).not.toMatch(/requirepass\s+[^"\\ ]/);
    for (const w of workloads(objects)) {
      for (const c of w.spec.template.spec.containers) {
        for (const e of c.env ?? []) {
          if (/PASS|AUTH/.test(e.name)) {
            expect(e.value, `${w.kind} ${c.name} ${e.name}`).toBeUndefined();
            expect(e.valueFrom.secretKeyRef, `${w.kind} ${c.name} ${e.name}`).toEqual({ name: 'my-redis', key: 'pw', optional: false });
          }
        }
      }
    }
    expect(redis.passwordSecret).toEqual({ name: 'my-redis', key: 'pw' });
    for (const e of redis.clientEnv()) {
      if (e.name === 'PROMPTMESH_REDIS_PASSWORD') expect(e.value).toBeUndefined();
    }
  });

  it('PDB allows one disruption and selects the pods; ServiceMonitor selects the client Service only', () => {
    const { redis, objects } = synth({ mode: 'cluster', serviceMonitorLabels: { release: 'prom' } });
    const [pdb] = byKind(objects, 'PodDisruptionBudget');
    expect(pdb.spec.maxUnavailable).toBe(1);
    expect(pdb.spec.selector.matchLabels).toEqual(redis.selectorLabels);
    const [sm] = byKind(objects, 'ServiceMonitor');
    expect(sm.metadata.labels.release).toBe('prom');
    expect(sm.spec.endpoints).toEqual([expect.objectContaining({ port: 'metrics', path: '/metrics' })]);
    const matched = byKind(objects, 'Service').filter((s) =>
      Object.entries(sm.spec.selector.matchLabels).every(([k, v]) => s.metadata.labels[k] === v),
    );
    expect(matched.map((s) => s.metadata.name)).toEqual(['redis']);
    expect(matched[0].spec.ports.find((p: any) => p.name === 'metrics').port).toBe(redis.metricsPort);
  });

  it('a digest pins the image', () => {
    const digest = `sha256:${'a'.repeat(64)}`;
    const { objects } = synth({ imageDigest: digest });
    expect(byKind(objects, 'StatefulSet')[0].spec.template.spec.containers[0].image).toBe(`${DEFAULT_REDIS_IMAGE}@${digest}`);
  });

  it('rejects bad props with errors naming the prop and the allowed values', () => {
    const bad: Array<[RedisProps, RegExp]> = [
      [{ mode: 'sentinel' as any }, /'mode' must be one of standalone, cluster/],
      [{ mode: 'cluster', masters: 2 }, /'masters' must be an integer from 3 to 16/],
      [{ mode: 'cluster', replicaZone: 'anywhere' as any }, /'replicaZone' must be one of required, preferred/],
      [{ image: 'redis' }, /'image' must be an image with an exact tag/],
      [{ image: 'redis:latest' }, /'image' must be an image with an exact tag/],
      [{ imageDigest: 'sha256:abc' }, /'imageDigest' must be sha256:<64 hex digits>/],
      [{ maxMemoryPolicy: 'lru' as any }, /'maxMemoryPolicy' must be one of allkeys-lru/],
      [{ maxMemory: '1G' }, /'maxMemory' must be a number with unit kb, mb or gb/],
      [{ maxMemory: '300mb' }, /'maxMemory' \(300mb\) must be at most 45% of 'resources.limits.memory' \(640Mi\): with AOF on, a rewrite's fork can double the data set under the same limit; at most 288mb here/],
      [{ maxMemory: '1gb', resources: { requests: { cpu: '1', memory: '2Gi' }, limits: { cpu: '1', memory: '2Gi' } } }, /must be at most 45% of 'resources.limits.memory' \(2Gi\)/],
      [
        { resources: { requests: { cpu: '2', memory: '512Mi' }, limits: { cpu: '1', memory: '512Mi' } } },
        /Redis: 'resources.requests.cpu' \(2\) must be less than or equal to 'resources.limits.cpu'/,
      ],
      [{ exporterResources: { requests: { cpu: 'lots', memory: '32Mi' }, limits: { cpu: '1', memory: '64Mi' } } }, /'exporterResources.requests.cpu' must be a positive CPU quantity/],
      [{ storageSize: 'ten gigs' }, /'storageSize' must be a Kubernetes quantity/],
      [{ name: 'Redis_Main' }, /'name' must be a lowercase RFC 1123 label/],
      [{ passwordSecret: { name: 'ok', key: 'bad key' } }, /'passwordSecret.key' must be a Secret key/],
    ];
    for (const [props, message] of bad) expect(() => synth(props), JSON.stringify(props)).toThrow(message);
  });

  it('matches the snapshot (standalone and cluster)', () => {
    expect(synth().objects).toMatchSnapshot('standalone');
    expect(synth({ mode: 'cluster' }).objects).toMatchSnapshot('cluster');
  });
});

// The generated config and scripts, run for real against the local redis-server: what the
// pods and the bootstrap Job execute, minus Kubernetes.
describe('Redis config and scripts on a real redis-server', () => {
  const dirs: string[] = [];
  const procs: ChildProcess[] = [];
  const password = 'test-Pass_word.123~';

  afterAll(async () => {
    for (const p of procs) if (p.exitCode === null) p.kill('SIGTERM');
    await Promise.all(procs.map((p) => (p.exitCode === null ? new Promise((r) => p.once('exit', r)) : null)));
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  function scratch(): string {
    const dir = mkdtempSync(join(tmpdir(), 'pm-redis-'));
    dirs.push(dir);
    return dir;
  }

  /** Starts start.sh like the pod does, with the data dir and port moved into a scratch dir. */
  async function startNode(mode: 'standalone' | 'cluster'): Promise<{ port: number; proc: ChildProcess; dir: string }> {
    const dir = scratch();
    mkdirSync(join(dir, 'run'));
    mkdirSync(join(dir, 'data'));
    // The pod's volume paths, moved into the scratch dir.
    const config = redisConfig({ mode, maxMemory: '64mb', policy: 'allkeys-lru' }).replaceAll(' /data', ` ${join(dir, 'data')}`);
    writeFileSync(join(dir, 'redis.conf'), config);
    writeFileSync(join(dir, 'start.sh'), START_SCRIPT);
    const port = await freePort();
    const env: Record<string, string> = {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      REDIS_PASSWORD: password,
      REDIS_CONFIG_SOURCE: join(dir, 'redis.conf'),
      REDIS_RUN_DIR: join(dir, 'run'),
    };
    if (mode === 'cluster') env.REDIS_ANNOUNCE_HOSTNAME = '127.0.0.1';
    const proc = spawn('sh', [join(dir, 'start.sh'), '--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], {
      env,
      stdio: 'ignore',
    });
    procs.push(proc);
    await waitFor(async () => (await cli(port, ['ping'])).stdout.trim() === 'PONG', 90_000, `redis-server on ${port}`);
    return { port, proc, dir };
  }

  function cli(port: number, args: string[], auth: string | null = password) {
    return run('redis-cli', ['-h', '127.0.0.1', '-p', String(port), ...args], { env: { ...process.env, ...(auth ? { REDISCLI_AUTH: auth } : {}) } });
  }

  it('standalone: the password is required and the memory policy applies', async () => {
    const { port } = await startNode('standalone');
    const anonymous = await cli(port, ['get', 'x'], null);
    expect(anonymous.stdout + anonymous.stderr).toMatch(/NOAUTH/);
    expect((await cli(port, ['config', 'get', 'maxmemory-policy'])).stdout).toContain('allkeys-lru');
    expect((await cli(port, ['config', 'get', 'maxmemory'])).stdout).toContain(String(64 * 1024 * 1024));
    // Renamed away: DEBUG is not available even with the password.
    const debug = await cli(port, ['debug', 'sleep', '0']);
    expect(debug.stdout + debug.stderr).toMatch(/unknown command/i);
    // The REDIS_URL the services get, resolved as the kubelet would, authenticates (host moved here).
    const { redis } = synth();
    const env = resolveEnv(redis.clientEnv() as any, { 'redis-auth': { password } });
    const url = env[ENV.redisUrl]!.replace(`${redis.host}:${redis.port}`, `127.0.0.1:${port}`);
    expect(url).toBe(`redis://:${password}@127.0.0.1:${port}`);
    const client = new Redis(url, { maxRetriesPerRequest: 1 });
    try {
      expect(await client.ping()).toBe('PONG');
    } finally {
      client.disconnect();
    }
  });

  it('start.sh refuses a password that would break REDIS_URL', async () => {
    const dir = scratch();
    writeFileSync(join(dir, 'start.sh'), START_SCRIPT);
    const result = await run('sh', [join(dir, 'start.sh')], { env: { PATH: process.env.PATH ?? '', REDIS_PASSWORD: 'a/b@c' } }).then(
      () => ({ code: 0, stderr: '' }),
      (e: { code: number; stderr: string }) => e,
    );
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/password may hold only/);
  });

  it('cluster: the bootstrap script creates a 3+3 cluster once and is a no-op when run again', async () => {
    const nodes = await Promise.all(Array.from({ length: 6 }, () => startNode('cluster')));
    const dir = scratch();
    writeFileSync(join(dir, 'bootstrap.sh'), BOOTSTRAP_SCRIPT);
    const env = {
      PATH: process.env.PATH ?? '',
      REDISCLI_AUTH: password,
      REDIS_CLUSTER_NODES: nodes.map((n) => `127.0.0.1:${n.port}`).join(' '),
      REDIS_CLUSTER_REPLICAS: '1',
    };
    const first = await run('sh', [join(dir, 'bootstrap.sh')], { env, timeout: 150_000 });
    expect(first.stdout).toContain('creating the cluster from the masters');
    expect(first.stdout.match(/joins as the replica of/g)).toHaveLength(3);
    expect(first.stdout).toMatch(/cluster_state:ok, 6 nodes, 3 masters/);
    const info = (await cli(nodes[0]!.port, ['cluster', 'info'])).stdout;
    expect(info).toMatch(/cluster_state:ok/);
    expect(info).toMatch(/cluster_slots_assigned:16384/);
    // CLUSTER NODES: id addr flags master-id ...; flags hold master or slave.
    // Roles reach every node's view by gossip, shortly after the slots do.
    const count = async (role: string) =>
      (await cli(nodes[0]!.port, ['cluster', 'nodes'])).stdout
        .trim()
        .split('\n')
        .filter((l) => l.split(' ')[2]!.split(',').includes(role)).length;
    await waitFor(async () => (await count('master')) === 3 && (await count('slave')) === 3, 30_000, 'three masters and three replicas');
    // The pairs are the construct's: node 3+k replicates node k (the two pods of shard k).
    const lines = (await cli(nodes[0]!.port, ['cluster', 'nodes'])).stdout.trim().split('\n').map((l) => l.split(' '));
    const idOf = (port: number) => lines.find((f) => f[1]!.startsWith(`127.0.0.1:${port}@`))![0];
    for (let k = 0; k < 3; k++) {
      const replica = lines.find((f) => f[1]!.startsWith(`127.0.0.1:${nodes[3 + k]!.port}@`))!;
      expect(replica[2]).toContain('slave');
      expect(replica[3], `replica of node ${k}`).toBe(idOf(nodes[k]!.port));
    }

    // A cluster client, as the services use (ioredis), given the seed list the way REDIS_CLUSTER_NODES
    // holds it: the nodes announce host names, and keys land across all three masters.
    const client = new Cluster(nodes.map((n) => ({ host: '127.0.0.1', port: n.port })), { redisOptions: { password } });
    try {
      for (let i = 0; i < 30; i++) await client.set(`pm-k8s-test:${i}`, String(i));
      expect(await client.get('pm-k8s-test:17')).toBe('17');
      const masters = client.nodes('master');
      expect(masters).toHaveLength(3);
      const perMaster = await Promise.all(masters.map((m) => m.dbsize()));
      expect(perMaster.every((n) => n > 0)).toBe(true);
      expect(perMaster.reduce((a, b) => a + b, 0)).toBe(30);
    } finally {
      client.disconnect();
    }

    const second = await run('sh', [join(dir, 'bootstrap.sh')], { env, timeout: 60_000 });
    expect(second.stdout).toContain('already exists');
    expect(second.stdout).not.toContain('creating the cluster');
    expect(second.stdout).not.toContain('joins as the replica');
    expect(second.stdout).toMatch(/cluster_state:ok, 6 nodes, 3 masters/);
  }, 240_000);
});
