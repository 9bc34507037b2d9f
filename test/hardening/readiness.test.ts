/**
 * Readiness means "can serve" (issue 9, item 10), on real processes reaching the real
 * PostgreSQL and Redis through relays the test cuts (test/support/tcp-proxy.ts).
 *
 * The class: for every layout (`SERVICE=all`, the router alone in front of the others, and
 * templates, context and llm each alone) and every dependency outage (PostgreSQL, Redis, both),
 * `/readyz` answers 200 exactly when the process still answers its core request (a completion;
 * a template read; a session read). A process that is ready while something it uses is down
 * names the degraded parts in the `/readyz` body and as `promptmesh_degraded{component} 1`;
 * once the dependencies are back it is ready with nothing degraded and the gauge at 0.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { METRICS, PATHS } from '../../contracts';
import { waitFor } from '../support/net';
import { rawRequest } from '../support/raw-http';
import { TEST_REDIS_URL } from '../support/redis';
import { startTcpProxy, type TcpProxy } from '../support/tcp-proxy';
import { ADMIN_KEY, startTargets, type Target, type Targets } from './targets';

/** The template the templates layout reads. */
const TEMPLATE = 'readiness-a';

const LAYOUTS = ['all', 'router', 'templates', 'context', 'llm'] as const;
type Layout = (typeof LAYOUTS)[number];

/** The request each layout exists to answer. */
async function serves(layout: Layout, target: Target): Promise<{ ok: boolean; status: number }> {
  let answer;
  if (layout === 'templates') {
    answer = await rawRequest(target.url, 'GET', `${PATHS.templates}/${TEMPLATE}`);
  } else if (layout === 'context') {
    answer = await rawRequest(target.url, 'GET', `${PATHS.sessions}/readiness-session/messages`);
  } else {
    const headers: Record<string, string> = { 'content-type': 'application/json', ...(layout === 'llm' ? {} : { authorization: `Bearer ${ADMIN_KEY}` }) };
    answer = await rawRequest(target.url, 'POST', PATHS.chatCompletions, headers, JSON.stringify({ model: 'echo', messages: [{ role: 'user', content: 'still there?' }] }));
  }
  return { ok: answer.status === 200, status: answer.status };
}

interface Readyz {
  status: number;
  checks: Record<string, string>;
  degraded: string[];
}

async function readyz(target: Target): Promise<Readyz> {
  const answer = await rawRequest(target.url, 'GET', PATHS.readyz);
  const body = JSON.parse(answer.body) as { checks: Record<string, string>; degraded: string[] };
  return { status: answer.status, checks: body.checks, degraded: body.degraded };
}

/** The `promptmesh_degraded` series of a process, by component. */
async function degradedGauge(target: Target): Promise<Record<string, number>> {
  const text = (await rawRequest(target.url, 'GET', PATHS.metrics)).body;
  const out: Record<string, number> = {};
  for (const m of text.matchAll(new RegExp(`^${METRICS.degraded}\\{([^}]*)\\} (\\S+)$`, 'gm'))) {
    const labels = Object.fromEntries([...m[1]!.matchAll(/(\w+)="([^"]*)"/g)].map((l) => [l[1], l[2]]));
    expect(Object.keys(labels)).toEqual(['component']);
    out[labels.component!] = Number(m[2]);
  }
  return out;
}

let t: Targets;
let pg: TcpProxy;
let redis: TcpProxy;

beforeAll(async () => {
  pg = await startTcpProxy(5432);
  const redisUrl = new URL(TEST_REDIS_URL);
  redis = await startTcpProxy(Number(redisUrl.port || 6379), redisUrl.hostname);
  redisUrl.port = String(redis.port);
  t = await startTargets({ databasePort: pg.port, redisUrl: redisUrl.toString() });
  const created = await rawRequest(t.templates.url, 'POST', PATHS.templates, { 'content-type': 'application/json' }, JSON.stringify({ name: TEMPLATE, type: 'text', template: 'Hi', labels: ['production'] }));
  expect(created.status).toBe(201);
  for (const layout of LAYOUTS) await waitFor(async () => (await readyz(t[layout])).degraded.length === 0, 30_000, `${layout} to start undegraded`);
}, 120_000);

afterAll(async () => {
  await pg?.restore();
  await redis?.restore();
  await t?.close();
  await pg?.close();
  await redis?.close();
});

// Which layouts use which dependency, directly or through a peer: they must notice the outage.
const USES: Record<'postgres' | 'redis', readonly Layout[]> = {
  postgres: ['all', 'router', 'templates'],
  redis: ['all', 'router', 'templates', 'context', 'llm'],
};

describe('readiness follows the ability to serve, in every layout, for every outage', () => {
  const outages: Array<Array<'postgres' | 'redis'>> = [['postgres'], ['redis'], ['postgres', 'redis']];
  for (const down of outages) {
    it(`${down.join(' and ')} down`, async () => {
      for (const d of down) await (d === 'postgres' ? pg : redis).cut();
      try {
        const affected = LAYOUTS.filter((l) => down.some((d) => USES[d].includes(l)));
        // Each affected process has noticed: one of its checks fails.
        for (const layout of affected) {
          await waitFor(async () => Object.values((await readyz(t[layout])).checks).some((v) => v !== 'ok'), 30_000, `${layout} to notice ${down.join('+')} down`);
        }
        const problems: string[] = [];
        for (const layout of LAYOUTS) {
          const target = t[layout];
          const serving = await serves(layout, target);
          const ready = await readyz(target);
          if ((ready.status === 200) !== serving.ok) {
            problems.push(`${layout}: /readyz ${ready.status} ${JSON.stringify(ready.checks)} but its core request answered ${serving.status}`);
            continue;
          }
          const failing = Object.entries(ready.checks).filter(([, v]) => v !== 'ok');
          if (ready.status === 200 && failing.length > 0) {
            if (ready.degraded.length === 0) problems.push(`${layout}: ready with failing checks ${JSON.stringify(failing)} but nothing named degraded`);
            const gauge = await degradedGauge(target);
            for (const component of ready.degraded) if (gauge[component] !== 1) problems.push(`${layout}: '${component}' degraded but ${METRICS.degraded} is ${gauge[component]}`);
          }
        }
        expect(problems).toEqual([]);

        // The reported case: SERVICE=all keeps serving, and stays ready, naming what is down.
        const all = await readyz(t.all);
        expect(all.status).toBe(200);
        expect(all.degraded).toEqual(expect.arrayContaining(down));
        // The router alone names the peers (and Redis) it goes without.
        const router = await readyz(t.router);
        expect(router.status).toBe(200);
        expect(router.degraded).toEqual(expect.arrayContaining(down.includes('postgres') ? ['templates'] : ['redis', 'context']));
      } finally {
        await pg.restore();
        await redis.restore();
      }
      for (const layout of LAYOUTS) {
        await waitFor(async () => {
          const r = await readyz(t[layout]);
          return r.status === 200 && r.degraded.length === 0;
        }, 30_000, `${layout} to be ready and undegraded again`);
        const gauge = await degradedGauge(t[layout]);
        expect(Object.values(gauge).every((v) => v === 0), `${layout}: ${JSON.stringify(gauge)}`).toBe(true);
      }
    }, 180_000);
  }
});
