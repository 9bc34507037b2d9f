// The registry: one adapter per provider type, closable and usable again after closing.
import { afterAll, describe, expect, it } from 'vitest';
import { fakeProviderConfig } from '../../../test/fake-provider/provider-config';
import { startFakeProvider } from '../../../test/fake-provider/server';
import { PROVIDER_TYPES } from '../types';
import { closeAdapters, getAdapter } from '.';

afterAll(() => closeAdapters());

describe('provider registry', () => {
  it('has an adapter for every provider type, of that type', () => {
    for (const type of PROVIDER_TYPES) expect(getAdapter(type).type).toBe(type);
    expect(() => getAdapter('nope' as never)).toThrow(/no adapter for provider type 'nope'/);
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
