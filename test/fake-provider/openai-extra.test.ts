/**
 * The fake provider's Embeddings and Responses APIs, checked with the official openai SDK
 * talking to it directly: what the SDK sends is accepted, what the fake answers the SDK reads
 * (base64 vectors decoded, typed stream events), and its refusals are the API's 400s.
 */
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fakeVector } from './wire';
import { startFakeProvider, type FakeProvider } from './server';

describe('fake provider: embeddings and responses, through the official SDK', () => {
  let fake: FakeProvider;
  let sdk: OpenAI;
  beforeAll(async () => {
    fake = await startFakeProvider({ apiKey: 'sk-fake' });
    sdk = new OpenAI({ baseURL: `${fake.url}/v1`, apiKey: 'sk-fake', maxRetries: 0 });
  });
  afterAll(() => fake?.close());

  it('answers embeddings in the format asked, deterministically', async () => {
    const res = await sdk.embeddings.create({ model: 'text-embedding-3-small', input: ['alpha', 'beta'], dimensions: 12 });
    // The SDK asked for base64 and decoded it.
    expect((fake.requests.at(-1)!.body as { encoding_format: string }).encoding_format).toBe('base64');
    expect(res.data.map((d) => d.embedding)).toEqual([fakeVector('alpha', 12), fakeVector('beta', 12)]);
    // 4 characters a token, rounded up: 'alpha' 2, 'beta' 1.
    expect(res.usage).toEqual({ prompt_tokens: 3, total_tokens: 3 });
    const floats = await sdk.embeddings.create({ model: 'm', input: 'alpha', encoding_format: 'float' });
    expect(floats.data[0]!.embedding).toHaveLength(1536);
  });

  it('refuses what the API refuses, naming the field, and misbehaves on demand', async () => {
    const err = await sdk.embeddings.create({ model: 'm', input: [] as string[] }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.BadRequestError);
    expect((err as InstanceType<typeof OpenAI.BadRequestError>).param).toBe('input');
    fake.setBehavior({ rules: [{ times: 1, fault: { type: 'status', status: 429, retryAfter: 1 } }] });
    const limited = await sdk.embeddings.create({ model: 'm', input: 'x' }).catch((e: unknown) => e);
    expect(limited).toBeInstanceOf(OpenAI.RateLimitError);
    fake.setBehavior({});
  });

  it('answers the Responses API plain and as typed stream events', async () => {
    const plain = await sdk.responses.create({ model: 'gpt-4o-mini', input: 'hello there', instructions: 'be brief' });
    expect(plain.output_text).toBe('echo: hello there');
    expect(plain.usage!.total_tokens).toBe(plain.usage!.input_tokens + plain.usage!.output_tokens);
    const stream = await sdk.responses.create({ model: 'gpt-4o-mini', input: [{ role: 'user', content: 'one two' }], stream: true });
    const events: string[] = [];
    let final: OpenAI.Responses.Response | undefined;
    for await (const e of stream) {
      events.push(e.type);
      if (e.type === 'response.completed') final = e.response;
    }
    expect(events).toEqual([
      'response.created',
      'response.in_progress',
      'response.output_item.added',
      'response.content_part.added',
      'response.output_text.delta',
      'response.output_text.delta',
      'response.output_text.delta',
      'response.output_text.done',
      'response.content_part.done',
      'response.output_item.done',
      'response.completed',
    ]);
    expect(final!.output_text ?? (final!.output[0] as { content: Array<{ text: string }> }).content[0]!.text).toBe('echo: one two');
  });
});
