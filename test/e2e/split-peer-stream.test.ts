/**
 * The router's own SSE parser over a real socket. In the mesh the llm service re-emits whole
 * events, so a split character can only reach the router's parser when the network cuts the
 * llm's bytes; here the router's llm peer is the fake provider itself (its chat completions
 * route is the llm service's internal shape), told to split every multi-byte character across
 * two network chunks. The official openai SDK reads the router.
 */
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readConfig } from '../../services/kit';
import { buildProcess, type PromptmeshProcess } from '../../services/process';
import { startFakeProvider, type FakeProvider } from '../fake-provider/server';
import { freePort } from '../support/net';
import { deletePrefix, uniquePrefix } from '../support/redis';

describe('router alone, reading an llm peer that splits multi-byte characters', () => {
  let fake: FakeProvider;
  let router: PromptmeshProcess;
  let url: string;
  const prefix = uniquePrefix('split-peer');

  beforeAll(async () => {
    fake = await startFakeProvider({ models: ['model-a'] });
    // Templates and context are not needed for a plain stream: point them at a closed port.
    const closed = `http://127.0.0.1:${await freePort()}`;
    router = await buildProcess(
      readConfig({ SERVICE: 'router', HOST: '127.0.0.1', PORT: '0', LLM_URL: fake.url, TEMPLATES_URL: closed, CONTEXT_URL: closed, REDIS_KEY_PREFIX: prefix, LOG_LEVEL: 'silent' }),
    );
    await router.app.listen({ port: 0, host: '127.0.0.1' });
    url = `http://127.0.0.1:${(router.app.server.address() as { port: number }).port}`;
  });

  afterAll(async () => {
    await router?.app.close();
    await fake?.close();
    await deletePrefix(prefix).catch(() => undefined);
  });

  it('hands the SDK every character intact', async () => {
    const text = 'Grüße aus Köln — 東京 😀 ß ñ ok';
    fake.setBehavior({ rules: [{ stream: true, reply: { text, splitMultibyte: true } }] });
    const sdk = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'unused', maxRetries: 0, timeout: 30_000 });
    for (let i = 0; i < 3; i++) {
      const stream = await sdk.chat.completions.create({ model: 'model-a', stream: true, messages: [{ role: 'user', content: 'say it' }] });
      let got = '';
      for await (const chunk of stream) got += chunk.choices[0]?.delta?.content ?? '';
      expect(got).toBe(text);
    }
    expect(fake.stats.outcomes.ok).toBe(3);
  });
});
