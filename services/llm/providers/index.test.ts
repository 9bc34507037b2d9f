// The registry: one adapter per provider type, loaded on demand, closable and usable again after closing.
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { fakeProviderConfig } from '../../../test/fake-provider/provider-config';
import { startFakeProvider } from '../../../test/fake-provider/server';
import { PROVIDER_TYPES } from '../types';
import { closeAdapters, getAdapter, loadAdapters } from '.';

afterAll(() => closeAdapters());

describe('provider registry', () => {
  it('has an adapter for every provider type, of that type, once loaded', async () => {
    await loadAdapters(PROVIDER_TYPES);
    for (const type of PROVIDER_TYPES) expect(getAdapter(type).type).toBe(type);
    expect(() => getAdapter('nope' as never)).toThrow(/no adapter for provider type 'nope'/);
    await expect(loadAdapters(['openai', 'nope' as never])).rejects.toThrow(/no adapter for provider type 'nope'/);
  });

  it('loads only the adapters of the types asked for: no AWS SDK for an openai-only process', () => {
    // A fresh process (this one has loaded every adapter): which modules does loading openai evaluate?
    const script = [
      "const { loadAdapters, getAdapter } = require('./services/llm/providers');",
      'loadAdapters(["openai"]).then(() => {',
      '  const loaded = Object.keys(require.cache);',
      '  let bedrock = "not loaded"; try { getAdapter("bedrock"); bedrock = "loaded"; } catch (e) { bedrock = e.message; }',
      '  process.stdout.write(JSON.stringify({ openai: getAdapter("openai").type, bedrock,',
      '    aws: loaded.filter((f) => /@aws-sdk|@smithy/.test(f)).length,',
      '    cloud: loaded.filter((f) => /providers\\/(bedrock|vertex|azure-openai)\\//.test(f)).length }));',
      '});',
    ].join('\n');
    const out = execFileSync(process.execPath, ['--import', 'tsx', '-e', script], { cwd: join(__dirname, '../../..'), encoding: 'utf8' });
    expect(JSON.parse(out)).toEqual({ openai: 'openai', bedrock: "the adapter for provider type 'bedrock' is not loaded: loadAdapters() it first", aws: 0, cloud: 0 });
  });

  it('serves calls again after closeAdapters()', async () => {
    const fake = await startFakeProvider();
    try {
      const p = fakeProviderConfig(fake, 'openai');
      await getAdapter('openai').complete(p, { model: 'm', messages: [{ role: 'user', content: 'a' }] }, {});
      await closeAdapters();
      const res = await getAdapter('openai').complete(p, { model: 'm', messages: [{ role: 'user', content: 'b' }] }, {});
      expect(res.choices[0].message.content).toBe('echo: b');
    } finally {
      await fake.close();
    }
  });
});
