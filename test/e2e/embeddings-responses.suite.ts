/**
 * Cases of the end-to-end suite (suite.ts) for the API beyond chat: embeddings (float, base64,
 * dimensions; fallback, cache, cost and key limits), the Responses API passed through (plain and
 * streaming, and the 400 for a provider that does not speak it), and `passthrough: true`
 * providers. Client: the official openai SDK, through the router of either layout.
 */
import OpenAI from 'openai';
import { expect, it } from 'vitest';
import { HEADERS } from '../../contracts';
import { fakeVector } from '../fake-provider/wire';
import { KEYS, type Layout } from './support';

/** The providers and aliases these cases need, as lines of the e2e providers file (support.ts). */
export function embeddingsProviderLines(fakeUrl: string): { providers: string[]; models: string[] } {
  return {
    providers: [
      `  - { name: fake-openai, type: openai, baseUrl: ${fakeUrl}/v1, timeoutMs: 10000, models: [emb-a, gpt-fake], prices: { emb-a: { input: 0.02, output: 0 }, gpt-fake: { input: 1, output: 2 } } }`,
      `  - { name: fake-compat, type: openai-compatible, baseUrl: ${fakeUrl}/v1, timeoutMs: 10000, models: [emb-b], prices: { emb-b: { input: 0.1, output: 0 } } }`,
      `  - { name: fake-vllm, type: openai-compatible, baseUrl: ${fakeUrl}/v1, timeoutMs: 10000, passthrough: true, models: [vllm-model] }`,
    ],
    models: ['  embed:', '    - { provider: fake-openai, model: emb-a }', '    - { provider: fake-compat, model: emb-b }'],
  };
}

async function post(layout: Layout, path: string, body: unknown, key: string = KEYS.admin): Promise<{ status: number; headers: Headers; body: any }> {
  const res = await fetch(`${layout.url}${path}`, { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const text = await res.text();
  try {
    return { status: res.status, headers: res.headers, body: JSON.parse(text) };
  } catch {
    return { status: res.status, headers: res.headers, body: text };
  }
}

function decodeBase64Floats(text: string): number[] {
  const buf = Buffer.from(text, 'base64');
  return Array.from({ length: buf.length / 4 }, (_, i) => buf.readFloatLE(i * 4));
}

/** Registers the cases; `layout` is read when they run (the suite starts it in `beforeAll`). */
export function defineEmbeddingsAndResponsesCases(layout: () => Layout): void {
  const sdk = () => new OpenAI({ baseURL: `${layout().url}/v1`, apiKey: KEYS.admin, maxRetries: 0, timeout: 30_000 });
  const upstream = (suffix: string) => layout().fake.requests.filter((r) => r.path.endsWith(suffix));
  const unique = (text: string) => `${text} ${layout().name} ${Date.now()} ${Math.random()}`;

  it('embeds through the SDK: its default (base64 on the wire), float, base64 and dimensions', async () => {
    const texts = [unique('first text'), unique('second text')];
    // The SDK asks for base64 by default and decodes it: the vectors are the fake's, exactly.
    const plain = await sdk().embeddings.create({ model: 'emb-a', input: texts });
    expect(plain.object).toBe('list');
    expect(plain.data.map((d) => d.index)).toEqual([0, 1]);
    expect(plain.data[0]!.embedding).toHaveLength(1536);
    expect(plain.data[0]!.embedding).toEqual(fakeVector(texts[0]!, 1536));
    expect(plain.data[1]!.embedding).toEqual(fakeVector(texts[1]!, 1536));
    expect(plain.usage.prompt_tokens).toBeGreaterThan(0);

    const floats = await sdk().embeddings.create({ model: 'emb-a', input: unique('floats'), encoding_format: 'float', dimensions: 8 });
    expect(floats.data[0]!.embedding).toHaveLength(8);
    expect(floats.data[0]!.embedding.every((x) => typeof x === 'number')).toBe(true);
    // The provider got the dimensions.
    expect((upstream('/embeddings').at(-1)!.body as { dimensions?: number }).dimensions).toBe(8);

    const input = unique('base64');
    const b64 = await sdk().embeddings.create({ model: 'emb-a', input, encoding_format: 'base64', dimensions: 16 });
    const raw = b64.data[0]!.embedding as unknown as string;
    expect(typeof raw).toBe('string');
    expect(decodeBase64Floats(raw)).toEqual(fakeVector(input, 16));

    // Token arrays, through an OpenAI-compatible provider (asked for floats).
    const tokens = await sdk().embeddings.create({ model: 'emb-b', input: [[1, 2, 3], [4, 5]], encoding_format: 'float', dimensions: 4 });
    expect(tokens.data).toHaveLength(2);
    expect(tokens.usage.prompt_tokens).toBe(5);
    expect((upstream('/embeddings').at(-1)!.body as { encoding_format?: string }).encoding_format).toBe('float');
  });

  it('costs embeddings by the input price, caches them per tenant, and says where they came from', async () => {
    const input = unique('cache me');
    const first = await post(layout(), '/v1/embeddings', { model: 'emb-a', input, encoding_format: 'float', dimensions: 4 });
    expect(first.status).toBe(200);
    expect(first.headers.get(HEADERS.provider)).toBe('fake-openai');
    expect(first.headers.get(HEADERS.model)).toBe('emb-a');
    expect(first.headers.get(HEADERS.cache)).toBe('miss');
    const tokens = first.body.usage.prompt_tokens as number;
    expect(first.body.usage.cost_usd).toBeCloseTo((tokens * 0.02) / 1e6, 12);
    const calls = upstream('/embeddings').length;

    // The same request again: from the cache, at no cost, not sent upstream; base64 asked, so
    // the cached floats are encoded for this client.
    const again = await post(layout(), '/v1/embeddings', { model: 'emb-a', input, encoding_format: 'base64', dimensions: 4 });
    expect(again.status).toBe(200);
    expect(again.headers.get(HEADERS.cache)).toBe('hit');
    expect(again.body.usage.cost_usd).toBe(0);
    expect(decodeBase64Floats(again.body.data[0].embedding)).toEqual(first.body.data[0].embedding);
    expect(upstream('/embeddings').length).toBe(calls);

    // Another key is another tenant: its own miss.
    const other = await post(layout(), '/v1/embeddings', { model: 'emb-a', input, encoding_format: 'float', dimensions: 4 }, KEYS.user);
    expect(other.headers.get(HEADERS.cache)).toBe('miss');
    expect(upstream('/embeddings').length).toBe(calls + 1);
  });

  it('falls back to the next provider of an alias when the first fails', async () => {
    layout().fake.setBehavior({ rules: [{ model: 'emb-a', fault: { type: 'status', status: 503 } }] });
    try {
      const res = await post(layout(), '/v1/embeddings', { model: 'embed', input: unique('fall back'), dimensions: 4 });
      expect(res.status).toBe(200);
      expect(res.headers.get(HEADERS.provider)).toBe('fake-compat');
      expect(res.headers.get(HEADERS.model)).toBe('emb-b');
      // Priced by the provider that answered.
      expect(res.body.usage.cost_usd).toBeCloseTo((res.body.usage.prompt_tokens * 0.1) / 1e6, 12);
      const models = upstream('/embeddings').slice(-2).map((r) => (r.body as { model: string }).model);
      expect(models).toEqual(['emb-a', 'emb-b']);
    } finally {
      layout().fake.setBehavior({});
    }
  });

  it("holds embeddings to the key's tokens per minute, and refuses bad input with a 400 naming the field", async () => {
    // About 1250 tokens of input: more than the key's 1000 per minute.
    const big = await post(layout(), '/v1/embeddings', { model: 'emb-a', input: 'word '.repeat(1000) }, KEYS.tokenLimited);
    expect(big.status).toBe(429);
    expect(big.body.error.message).toContain("'e2e-token-limited'");

    const cases: Array<[unknown, string]> = [
      [{ model: 'emb-a' }, 'input'],
      [{ model: 'emb-a', input: [] }, 'input'],
      [{ model: 'emb-a', input: 'x', encoding_format: 'hex' }, 'encoding_format'],
      [{ model: 'emb-a', input: 'x', dimensions: 0 }, 'dimensions'],
      [{ model: 'emb-a', input: 'x', temperature: 0 }, 'temperature'],
      [{ input: 'x' }, 'model'],
    ];
    for (const [body, param] of cases) {
      const res = await post(layout(), '/v1/embeddings', body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(res.body.error.param, JSON.stringify(body)).toBe(param);
    }
    const unknown = await post(layout(), '/v1/embeddings', { model: 'no-such-model', input: 'x' });
    expect(unknown.status).toBe(404);
  });

  it('passes the Responses API through to an OpenAI provider, plain and streaming', async () => {
    const plain = await sdk().responses.create({ model: 'gpt-fake', input: 'hello responses' });
    expect(plain.object).toBe('response');
    expect(plain.status).toBe('completed');
    expect(plain.output_text).toBe('echo: hello responses');
    expect(plain.usage?.output_tokens).toBe(3);
    const sent = upstream('/responses').at(-1)!;
    expect(sent.body).toMatchObject({ model: 'gpt-fake', input: 'hello responses', stream: false });

    const stream = await sdk().responses.create({ model: 'gpt-fake', input: 'stream these words', stream: true });
    const types: string[] = [];
    let text = '';
    for await (const event of stream) {
      types.push(event.type);
      if (event.type === 'response.output_text.delta') text += event.delta;
    }
    expect(text).toBe('echo: stream these words');
    expect(types[0]).toBe('response.created');
    expect(types.at(-1)).toBe('response.completed');
    expect(types).toContain('response.output_text.done');
  });

  it('answers the Responses API for other providers with a 400 that names the providers that can', async () => {
    const err = await sdk()
      .responses.create({ model: 'model-a', input: 'hi' })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.BadRequestError);
    const e = err as InstanceType<typeof OpenAI.BadRequestError>;
    expect(e.message).toContain('fake-openai (openai)');
    expect(e.message).toContain('fake-a (openai-compatible)');
    expect((e.error as { param?: string }).param).toBe('model');
    expect(upstream('/responses').filter((r) => (r.body as { model: string }).model === 'model-a')).toHaveLength(0);
  });

  it('sends provider-specific fields to passthrough providers only, and names them in a 400 for the others', async () => {
    const extra = { top_k: 5, chat_template_kwargs: { enable_thinking: false } };
    const ok = await sdk().chat.completions.create({ model: 'vllm-model', messages: [{ role: 'user', content: 'pass it on' }], ...extra } as OpenAI.Chat.ChatCompletionCreateParamsNonStreaming);
    expect(ok.choices[0]!.message.content).toBe('echo: pass it on');
    expect(upstream('/chat/completions').at(-1)!.body).toMatchObject(extra);

    const refused = await post(layout(), '/v1/chat/completions', { model: 'model-a', messages: [{ role: 'user', content: 'x' }], top_k: 5 });
    expect(refused.status).toBe(400);
    expect(refused.body.error.param).toBe('top_k');
    expect(refused.body.error.message).toContain('passthrough');
  });
}
