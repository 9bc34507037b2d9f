import { Redis } from 'ioredis';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { templateChangesChannel } from '../../contracts';
import { freePort, waitFor } from '../../test/support/net';
import { TEST_REDIS_URL } from '../../test/support/redis';
import { callTemplates, startTemplates, type RunningTemplates } from '../../test/support/templates-service';
import type { TemplateChange } from './types';

let svc: RunningTemplates;
let subscriber: Redis;
const received: TemplateChange[] = [];

beforeAll(async () => {
  svc = await startTemplates({ label: 'changes' });
  subscriber = new Redis(TEST_REDIS_URL);
  subscriber.on('message', (channel, message) => {
    if (channel === templateChangesChannel(svc.prefix)) received.push(JSON.parse(message));
  });
  await subscriber.subscribe(templateChangesChannel(svc.prefix));
});

afterAll(async () => {
  subscriber?.disconnect();
  await svc?.close();
});

const call = (method: string, path: string, body?: unknown) => callTemplates(svc.url, method, path, body);

describe('change publishing and the change feed', () => {
  it('publishes every change on Redis with the sequence numbers the feed lists', async () => {
    const before = (await call('GET', '/v1/templates/changes')).seq as number;
    const local: TemplateChange[] = [];
    const unsubscribe = svc.core.onChange((c) => local.push(c));

    await call('POST', '/v1/templates', { name: 'pub', type: 'text', template: 'one' });
    await call('POST', '/v1/templates/pub/versions', { type: 'text', template: 'two' });
    await call('PUT', '/v1/templates/pub/labels/production', { version: 2 });
    await call('PUT', '/v1/templates/pub/labels/production', { version: 2 }); // no-op: no change
    await call('PUT', '/v1/templates/pub/labels/canary', { versions: [{ version: 1, weight: 50 }, { version: 2, weight: 50 }] });
    await call('DELETE', '/v1/templates/pub');
    unsubscribe();

    const feed = await call('GET', `/v1/templates/changes?since=${before}`);
    const expected = [
      { name: 'pub', kind: 'created', version: 1 },
      { name: 'pub', kind: 'label', label: 'production', version: 1 },
      { name: 'pub', kind: 'version', version: 2 },
      { name: 'pub', kind: 'label', label: 'production', version: 2 },
      { name: 'pub', kind: 'label', label: 'canary' },
      { name: 'pub', kind: 'archived' },
    ];
    expect(feed.changes.map(({ seq: _s, at: _a, ...rest }: TemplateChange) => rest)).toEqual(expected);
    expect(feed.seq).toBe(feed.changes[feed.changes.length - 1].seq);
    const seqs = feed.changes.map((c: TemplateChange) => c.seq);
    expect(seqs).toEqual(seqs.map((_: number, i: number) => before + 1 + i));

    await waitFor(() => received.filter((c) => c.name === 'pub').length >= expected.length, 10_000, 'Redis messages');
    expect(received.filter((c) => c.name === 'pub')).toEqual(feed.changes);
    expect(local).toEqual(feed.changes);
  });

  it('pages the feed and flags a client that is ahead of the server', async () => {
    for (let i = 0; i < 5; i++) await call('POST', '/v1/templates', { name: `feed-${i}`, type: 'text', template: 'x', labels: [] });
    const all = await call('GET', '/v1/templates/changes?since=0&limit=1000');
    expect(all.has_more).toBe(false);
    const collected: TemplateChange[] = [];
    let since = 0;
    for (;;) {
      const page = await call('GET', `/v1/templates/changes?since=${since}&limit=2`);
      expect(page.changes.length).toBeLessThanOrEqual(2);
      collected.push(...page.changes);
      if (!page.has_more) break;
      since = page.changes[page.changes.length - 1].seq;
    }
    expect(collected).toEqual(all.changes);
    const tail = await call('GET', `/v1/templates/changes?since=${all.seq}`);
    expect(tail).toMatchObject({ seq: all.seq, changes: [], has_more: false, reset: false });
    expect((await call('GET', `/v1/templates/changes?since=${all.seq + 1000}`)).reset).toBe(true);
  });

  it('exports every active template with its labels and the versions they point at', async () => {
    await call('POST', '/v1/templates', { name: 'exp', type: 'chat', template: [{ role: 'system', content: 'v1 {{a}}' }] });
    await call('POST', '/v1/templates/exp/versions', { type: 'text', template: 'v2' });
    await call('POST', '/v1/templates/exp/versions', { type: 'text', template: 'v3', labels: ['staging'] });
    await call('POST', '/v1/templates', { name: 'exp-gone', type: 'text', template: 'x' });
    await call('DELETE', '/v1/templates/exp-gone');

    const exported = await call('GET', '/v1/templates/export');
    const feed = await call('GET', '/v1/templates/changes');
    expect(exported.seq).toBe(feed.seq);
    const names = exported.templates.map((t: any) => t.name);
    expect(names).toContain('exp');
    expect(names).not.toContain('exp-gone');
    expect(names).not.toContain('pub');
    const exp = exported.templates.find((t: any) => t.name === 'exp');
    expect(exp.labels).toEqual({ production: [{ version: 1, weight: 100 }], staging: [{ version: 3, weight: 100 }] });
    expect(exp.latest_version).toBe(3);
    // Only the versions labels point at: what a cache needs, not the whole history.
    expect(exp.versions.map((v: any) => v.version)).toEqual([1, 3]);
    expect(exp.versions[0]).toMatchObject({ type: 'chat', variables: ['a'], template: [{ role: 'system', content: 'v1 {{a}}' }] });
  });
});

describe('with Redis down', () => {
  it('still accepts writes, records them in the feed, and counts the failed publishes', async () => {
    const port = await freePort();
    const down = await startTemplates({ label: 'noredis', env: { REDIS_URL: `redis://127.0.0.1:${port}` } });
    try {
      const created = await request(`${down.url}/v1/templates`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ name: 'resilient', type: 'text', template: 'still here' }),
      });
      expect(created.statusCode).toBe(201);
      await created.body.dump();
      const feed = await down.core.changesSince(0);
      expect(feed.changes.map((c) => c.kind)).toEqual(['created', 'label']);
      expect((await down.core.render('resilient', {})).messages[0]!.content).toBe('still here');
      await waitFor(async () => /promptmesh_template_publish_failures_total 2/.test(await down.process.context.metrics.registry.metrics()), 10_000, 'failure count');
      const ready = await request(`${down.url}/readyz`);
      expect(ready.statusCode).toBe(200); // Redis is not needed to serve
      await ready.body.dump();
    } finally {
      await down.close();
    }
  });
});
