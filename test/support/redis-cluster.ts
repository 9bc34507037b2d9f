import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort, waitFor } from './net';

const run = promisify(execFile);

/** A real local Redis Cluster started from the `redis-server` binary. */
export interface TestRedisCluster {
  /** The masters' addresses, usable as `REDIS_CLUSTER_NODES` seeds. */
  nodes: Array<{ host: string; port: number }>;
  /** `host:port,host:port,...`, the `REDIS_CLUSTER_NODES` form. */
  nodesEnv: string;
  /**
   * A `REDIS_URL` carrying the cluster's password (`redis://:<password>@host:port`), the way the
   * services get it in cluster mode; without a password, the first node's plain URL.
   */
  redisUrl: string;
  /**
   * Runs one command on one node through `redis-cli` (authenticated when the cluster has a
   * password) and returns its raw output, e.g. `exec(port, 'SCRIPT', 'FLUSH')`.
   */
  exec(port: number, ...args: string[]): Promise<string>;
  /**
   * Kills one node at once (SIGKILL), as in a crash; the others keep running. Its slots stay
   * assigned to it (no replicas here), so the cluster reports `fail` for them, while keyless
   * commands such as PUBLISH keep working on the other nodes.
   */
  killNode(port: number): Promise<void>;
  /** Stops every node and removes the temp dir. Safe to call twice. */
  stop(): Promise<void>;
}

/** Options of {@link startRedisCluster}. */
export interface RedisClusterOptions {
  /**
   * Number of masters (no replicas). Redis Cluster needs at least three.
   * @default 3
   */
  masters?: number;
  /**
   * How long to wait for the cluster to report `cluster_state:ok` on every node.
   * @default 30000
   */
  timeoutMs?: number;
  /**
   * A password every node requires (`requirepass`) and uses towards the others (`masterauth`),
   * as a production cluster does. Use letters and digits only: it travels on command lines.
   * @default none (no authentication)
   */
  password?: string;
}

async function cli(port: number, password: string | undefined, ...args: string[]): Promise<string> {
  const auth = password ? ['-a', password, '--no-auth-warning'] : [];
  const { stdout } = await run('redis-cli', ['-h', '127.0.0.1', '-p', String(port), ...auth, ...args], { timeout: 10_000 });
  return stdout;
}

/**
 * Starts `masters` redis-server processes in cluster mode on free ports (data port and cluster
 * bus port both picked free) in a temp dir, joins them with `redis-cli --cluster create`, and
 * waits until every node says `cluster_state:ok`. Nothing is persisted. Always call `stop()`.
 */
export async function startRedisCluster(options: RedisClusterOptions = {}): Promise<TestRedisCluster> {
  const masters = options.masters ?? 3;
  if (masters < 3) throw new Error('a Redis Cluster needs at least three masters');
  const password = options.password;
  if (password !== undefined && !/^[A-Za-z0-9]{1,128}$/.test(password)) throw new Error("'password' must be 1-128 letters or digits");
  const auth = password ? ['--requirepass', password, '--masterauth', password] : [];
  const dir = await mkdtemp(join(tmpdir(), 'pm-redis-cluster-'));
  const children: ChildProcess[] = [];
  const ports: number[] = [];
  let stopped = false;

  const stop = async () => {
    if (stopped) return;
    stopped = true;
    await Promise.all(
      children.map(
        (child) =>
          new Promise<void>((resolve) => {
            if (child.exitCode !== null || child.signalCode !== null) return resolve();
            const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
            child.once('exit', () => {
              clearTimeout(timer);
              resolve();
            });
            child.kill('SIGTERM');
          }),
      ),
    );
    await rm(dir, { recursive: true, force: true });
  };

  try {
    const used = new Set<number>();
    const pick = async () => {
      for (;;) {
        const p = await freePort();
        if (!used.has(p)) {
          used.add(p);
          return p;
        }
      }
    };
    for (let i = 0; i < masters; i++) {
      const port = await pick();
      const busPort = await pick();
      ports.push(port);
      const child = spawn(
        'redis-server',
        [
          '--port', String(port),
          '--cluster-port', String(busPort),
          '--bind', '127.0.0.1',
          '--cluster-enabled', 'yes',
          '--cluster-config-file', join(dir, `nodes-${port}.conf`),
          '--cluster-node-timeout', '3000',
          '--dir', dir,
          '--save', '',
          '--appendonly', 'no',
          '--daemonize', 'no',
          '--logfile', join(dir, `redis-${port}.log`),
          ...auth,
        ],
        { stdio: 'ignore' },
      );
      children.push(child);
      child.once('error', () => undefined);
    }
    for (const port of ports) {
      await waitFor(async () => (await cli(port, password, 'PING')).trim() === 'PONG', 10_000, `redis-server on ${port}`);
    }
    await run(
      'redis-cli',
      [
        '--cluster', 'create', ...ports.map((p) => `127.0.0.1:${p}`), '--cluster-replicas', '0', '--cluster-yes',
        ...(password ? ['-a', password, '--no-auth-warning'] : []),
      ],
      { timeout: 30_000 },
    );
    await waitFor(
      async () => {
        for (const port of ports) {
          if (!/cluster_state:ok/.test(await cli(port, password, 'CLUSTER', 'INFO'))) return false;
        }
        return true;
      },
      options.timeoutMs ?? 30_000,
      'cluster_state:ok on every node',
    );
  } catch (err) {
    await stop();
    throw err;
  }
  const nodes = ports.map((port) => ({ host: '127.0.0.1', port }));
  return {
    nodes,
    nodesEnv: nodes.map((n) => `${n.host}:${n.port}`).join(','),
    redisUrl: `redis://${password ? `:${password}@` : ''}127.0.0.1:${ports[0]}`,
    exec: (port, ...args) => cli(port, password, ...args),
    killNode: async (port) => {
      const child = children[ports.indexOf(port)];
      if (!child) throw new Error(`no node of this cluster listens on ${port}`);
      if (child.exitCode !== null || child.signalCode !== null) return;
      await new Promise<void>((resolve) => {
        child.once('exit', () => resolve());
        child.kill('SIGKILL');
      });
    },
    stop,
  };
}

/** A private standalone redis-server, for tests that stop and restart Redis (outages). */
export interface TestRedisServer {
  port: number;
  url: string;
  /** Kills the server at once (SIGKILL): clients see connections drop, as in a crash. */
  kill(): Promise<void>;
  /** Starts it again on the same port (empty: nothing is persisted). */
  restart(): Promise<void>;
  /** Stops it for good and removes its temp dir. Safe to call twice. */
  stop(): Promise<void>;
}

/** Starts a private, non-persistent redis-server on a free port of 127.0.0.1. */
export async function startRedisServer(): Promise<TestRedisServer> {
  const dir = await mkdtemp(join(tmpdir(), 'pm-redis-'));
  const port = await freePort();
  let child: ChildProcess | undefined;
  let stopped = false;

  const start = async () => {
    child = spawn(
      'redis-server',
      ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'no', '--daemonize', 'no', '--logfile', join(dir, 'redis.log')],
      { stdio: 'ignore' },
    );
    child.once('error', () => undefined);
    await waitFor(async () => (await cli(port, undefined, 'PING')).trim() === 'PONG', 10_000, `redis-server on ${port}`);
  };
  const kill = async () => {
    const c = child;
    child = undefined;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    await new Promise<void>((resolve) => {
      c.once('exit', () => resolve());
      c.kill('SIGKILL');
    });
  };

  try {
    await start();
  } catch (err) {
    await kill();
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    kill,
    restart: async () => {
      await kill();
      await start();
    },
    stop: async () => {
      if (stopped) return;
      stopped = true;
      await kill();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
