/**
 * The cloud provider types end to end: a real llm service whose providers file names an
 * azure-openai, a bedrock and a vertex provider (all served by the fake provider in their own
 * wire formats), read by the official openai SDK. Chat, streaming, tools and structured output
 * go through each type, with the price of each answer and the refusal of what a type cannot
 * translate (a 400 naming the field).
 */
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeProvider, type FakeProvider } from '../fake-provider/server';
import { startLlm, type TestLlm } from '../support/llm-service';

let fake: FakeProvider;
let llm: TestLlm;
let sdk: OpenAI;
const saved = { ...process.env };

const MODELS = { azure: 'azure-4o', bedrock: 'claude-bedrock', vertex: 'gemini-flash' } as const;

beforeAll(async () => {
  fake = await startFakeProvider({ azureApiKey: 'az-key', awsAccessKeyId: 'AKIDE2E', geminiApiKey: 'g-key' });
  const prices = (model: string) => ({ [model]: { input: 1, output: 2 } });
  llm = await startLlm(
    {
      providers: [
        { name: 'azure', type: 'azure-openai', baseUrl: fake.url, apiKeyEnv: 'PM_E2E_AZURE_KEY', deployments: { 'gpt-4o': 'prod-4o' }, prices: prices('gpt-4o') },
        { name: 'bedrock', type: 'bedrock', region: 'us-west-2', baseUrl: fake.url, prices: prices('anthropic.claude-3-5-haiku-20241022-v1:0') },
        { name: 'gemini', type: 'vertex', baseUrl: fake.url, apiKeyEnv: 'PM_E2E_GEMINI_KEY', prices: prices('gemini-2.5-flash') },
      ],
      models: {
        [MODELS.azure]: [{ provider: 'azure', model: 'gpt-4o' }],
        [MODELS.bedrock]: [{ provider: 'bedrock', model: 'anthropic.claude-3-5-haiku-20241022-v1:0' }],
        [MODELS.vertex]: [{ provider: 'gemini', model: 'gemini-2.5-flash' }],
      },
    },
    // Bedrock's credentials come from the AWS default chain: here its environment source.
    { env: { PM_E2E_AZURE_KEY: 'az-key', PM_E2E_GEMINI_KEY: 'g-key', AWS_ACCESS_KEY_ID: 'AKIDE2E', AWS_SECRET_ACCESS_KEY: 'secret' } },
  );
  sdk = new OpenAI({ baseURL: `${llm.url}/v1`, apiKey: 'unused', maxRetries: 0, timeout: 20_000 });
});
afterAll(async () => {
  await llm?.close();
  await fake?.close();
  process.env = saved;
});

describe.each(Object.entries(MODELS))('through %s', (api, model) => {
  it('answers chat with usage and its cost', async () => {
    fake.reset();
    const { data, response } = await sdk.chat.completions.create({ model, messages: [{ role: 'system', content: 'be brief' }, { role: 'user', content: 'hello cloud' }] }).withResponse();
    expect(data.choices[0].message.content).toBe('echo: hello cloud');
    expect(data.usage?.completion_tokens).toBe(3);
    expect(Number(response.headers.get('x-promptmesh-cost-usd'))).toBeGreaterThan(0);
    expect(fake.stats.outcomes.ok).toBe(1);
    expect(fake.requests.at(-1)?.path).toMatch(api === 'azure' ? /\/openai\/deployments\/prod-4o\// : api === 'bedrock' ? /\/converse$/ : /:generateContent$/);
  });

  it('streams, the usage chunk last', async () => {
    fake.reset();
    const stream = await sdk.chat.completions.create({ model, messages: [{ role: 'user', content: 'a b c' }], stream: true, stream_options: { include_usage: true } });
    let text = '';
    let usage;
    for await (const c of stream) {
      text += c.choices[0]?.delta.content ?? '';
      if (c.usage) usage = c.usage;
    }
    expect(text).toBe('echo: a b c');
    expect(usage).toMatchObject({ completion_tokens: 4 });
  });

  it('runs a tool round trip with parallel calls', async () => {
    fake.setBehavior({ rules: [{ times: 1, reply: { toolCalls: [{ name: 'weather', arguments: { city: 'Paris' } }, { name: 'weather', arguments: { city: 'Rome' } }] } }] });
    const tools = [{ type: 'function' as const, function: { name: 'weather', description: 'weather of a city', parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } } }];
    const first = await sdk.chat.completions.create({ model, messages: [{ role: 'user', content: 'weather in Paris and Rome?' }], tools });
    const calls = first.choices[0].message.tool_calls ?? [];
    expect(first.choices[0].finish_reason).toBe('tool_calls');
    expect(calls.map((c) => (c.type === 'function' ? JSON.parse(c.function.arguments) : null))).toEqual([{ city: 'Paris' }, { city: 'Rome' }]);
    const second = await sdk.chat.completions.create({
      model,
      tools,
      messages: [{ role: 'user', content: 'weather in Paris and Rome?' }, first.choices[0].message, ...calls.map((c, i) => ({ role: 'tool' as const, tool_call_id: c.id, content: i === 0 ? 'sunny' : 'rainy' }))],
    });
    expect(second.choices[0].finish_reason).toBe('stop');
    expect(fake.stats.outcomes.bad_request ?? 0).toBe(0);
  });

  it('asks for structured output in the provider\'s own terms and returns the JSON', async () => {
    fake.reset();
    fake.setBehavior({ reply: { text: '{"city":"Paris"}' } });
    const schema = { type: 'object', properties: { city: { type: 'string' } }, required: ['city'], additionalProperties: false };
    const res = await sdk.chat.completions.create({ model, messages: [{ role: 'user', content: 'capital of France?' }], response_format: { type: 'json_schema', json_schema: { name: 'answer', schema, strict: true } } });
    expect(JSON.parse(res.choices[0].message.content!)).toEqual({ city: 'Paris' });
    const sent = fake.requests.at(-1)!.body as any;
    if (api === 'azure') expect(sent.response_format.json_schema.schema).toEqual(schema);
    if (api === 'bedrock') expect(JSON.parse(sent.outputConfig.textFormat.structure.jsonSchema.schema)).toEqual(schema);
    if (api === 'vertex') expect(sent.generationConfig.responseJsonSchema).toEqual(schema);
  });
});

describe('what a type cannot translate', () => {
  it('is a 400 naming the field, and never reaches the provider', async () => {
    fake.reset();
    const err = await sdk.chat.completions.create({ model: MODELS.bedrock, messages: [{ role: 'user', content: 'x' }], seed: 3 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.BadRequestError);
    expect(err).toMatchObject({ status: 400, param: 'seed', code: 'unsupported_parameter' });
    const err2 = await sdk.chat.completions.create({ model: MODELS.vertex, messages: [{ role: 'user', content: 'x' }], logit_bias: { '50256': -100 } }).catch((e: unknown) => e);
    expect(err2).toMatchObject({ status: 400, param: 'logit_bias' });
    expect(fake.stats.requests).toBe(0);
  });
});

describe('the Responses API', () => {
  it('is relayed to an azure-openai provider on Azure\'s v1 path, plain and streamed', async () => {
    fake.reset();
    const { data, response } = await sdk.responses.create({ model: MODELS.azure, input: 'hello responses' }).withResponse();
    expect(data.output_text).toBe('echo: hello responses');
    expect(data.model).toBe('prod-4o');
    expect(response.headers.get('x-promptmesh-provider')).toBe('azure');
    expect(fake.requests.at(-1)).toMatchObject({ path: '/openai/v1/responses', body: { model: 'prod-4o', input: 'hello responses' } });
    expect(fake.requests.at(-1)?.headers['api-key']).toBe('az-key');

    const stream = sdk.responses.stream({ model: MODELS.azure, input: 'a b c' });
    let text = '';
    for await (const ev of stream) if (ev.type === 'response.output_text.delta') text += ev.delta;
    const final = await stream.finalResponse();
    expect(text).toBe('echo: a b c');
    expect(final).toMatchObject({ status: 'completed', usage: { output_tokens: 4 } });
    expect(fake.stats.outcomes.ok).toBe(2);
  });

  it('retries a rate-limited Azure answer, as chat does', async () => {
    fake.reset();
    fake.setBehavior({ rules: [{ api: 'azure', times: 1, fault: { type: 'status', status: 429, retryAfter: 0 } }] });
    const res = await sdk.responses.create({ model: MODELS.azure, input: 'again' });
    expect(res.output_text).toBe('echo: again');
    expect(fake.stats.outcomes).toMatchObject({ status_429: 1, ok: 1 });
  });

  it('is a 400 naming the providers that can for bedrock and vertex models, before any call', async () => {
    fake.reset();
    for (const model of [MODELS.bedrock, MODELS.vertex]) {
      const err = await sdk.responses.create({ model, input: 'x' }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(OpenAI.BadRequestError);
      expect((err as Error).message).toMatch(/do not speak it\. Providers that do: azure/);
      expect(err).toMatchObject({ status: 400, param: 'model' });
    }
    expect(fake.stats.requests).toBe(0);
  });
});
