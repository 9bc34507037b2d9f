// The fake provider's Azure OpenAI side, driven by the official `openai` SDK's AzureOpenAI
// client: deployment paths, `api-version`, the `api-key` header or an Entra ID token the fake's
// token endpoint issued, and misbehaviour observed through the SDK.
import OpenAI, { AzureOpenAI } from 'openai';
import { request } from 'undici';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startFakeProvider, type FakeProvider } from './server';

let fake: FakeProvider;
let azure: AzureOpenAI;

beforeAll(async () => {
  fake = await startFakeProvider({ azureApiKey: 'az-key' });
  azure = new AzureOpenAI({ endpoint: fake.url, apiKey: 'az-key', apiVersion: '2024-10-21', maxRetries: 0, timeout: 10_000 });
});
afterAll(() => fake.close());
afterEach(() => fake.reset());

describe('Azure OpenAI wire format', () => {
  it('answers on the deployment path with the api-version the SDK sends, the deployment as model', async () => {
    const res = await azure.chat.completions.create({ model: 'gpt4o-prod', messages: [{ role: 'user', content: 'hello azure' }] });
    expect(res.choices[0].message.content).toBe('echo: hello azure');
    expect(res.model).toBe('gpt4o-prod');
    expect(fake.requests[0]).toMatchObject({ path: '/openai/deployments/gpt4o-prod/chat/completions' });
    expect(fake.requests[0].headers['api-key']).toBe('az-key');
  });

  it('streams with usage, tool calls (parallel ones too) and embeddings as the SDK reads them', async () => {
    const stream = await azure.chat.completions.create({ model: 'dep', messages: [{ role: 'user', content: 'a b' }], stream: true, stream_options: { include_usage: true } });
    let text = '';
    let usage;
    for await (const c of stream) {
      text += c.choices[0]?.delta.content ?? '';
      if (c.usage) usage = c.usage;
    }
    expect(text).toBe('echo: a b');
    expect(usage).toMatchObject({ completion_tokens: 3 });

    fake.setBehavior({ reply: { toolCalls: [{ name: 'a', arguments: { x: 1 } }, { name: 'b', arguments: { y: 2 } }] } });
    const tools = await azure.chat.completions.create({ model: 'dep', messages: [{ role: 'user', content: 'go' }], tools: [{ type: 'function', function: { name: 'a' } }, { type: 'function', function: { name: 'b' } }] });
    expect(tools.choices[0].finish_reason).toBe('tool_calls');
    expect(tools.choices[0].message.tool_calls?.map((t) => (t.type === 'function' ? [t.function.name, JSON.parse(t.function.arguments)] : []))).toEqual([
      ['a', { x: 1 }],
      ['b', { y: 2 }],
    ]);

    const emb = await azure.embeddings.create({ model: 'embed-dep', input: ['one', 'two'], dimensions: 4 });
    expect(emb.data.map((d) => d.embedding.length)).toEqual([4, 4]);
    expect(emb.usage.prompt_tokens).toBeGreaterThan(0);
    expect(fake.requests.at(-1)?.path).toBe('/openai/deployments/embed-dep/embeddings');
  });

  it('accepts an Entra ID token from its token endpoint, and refuses a wrong key or a missing api-version', async () => {
    const tokenRes = await request(`${fake.url}/tenant-1/oauth2/v2.0/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'client_credentials', client_id: 'c', scope: 'https://cognitiveservices.azure.com/.default', client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer', client_assertion: 'jwt' }).toString(),
    });
    const { access_token: token } = (await tokenRes.body.json()) as { access_token: string };
    const entra = new AzureOpenAI({ endpoint: fake.url, azureADTokenProvider: async () => token, apiVersion: '2024-10-21', maxRetries: 0 });
    expect((await entra.chat.completions.create({ model: 'dep', messages: [{ role: 'user', content: 'hi' }] })).choices[0].message.content).toBe('echo: hi');
    expect(fake.requests.at(-1)?.headers.authorization).toBe(`Bearer ${token}`);

    const wrong = new AzureOpenAI({ endpoint: fake.url, apiKey: 'nope', apiVersion: '2024-10-21', maxRetries: 0 });
    await expect(wrong.chat.completions.create({ model: 'dep', messages: [{ role: 'user', content: 'hi' }] })).rejects.toMatchObject({ status: 401 });
    const noVersion = await request(`${fake.url}/openai/deployments/dep/chat/completions`, { method: 'POST', headers: { 'api-key': 'az-key', 'content-type': 'application/json' }, body: JSON.stringify({ messages: [{ role: 'user', content: 'x' }] }) });
    expect(noVersion.statusCode).toBe(404);
    expect(await noVersion.body.json()).toMatchObject({ error: { code: '404', message: 'Resource not found' } });
  });

  it('misbehaves on demand for api azure: 429 with Retry-After, an error event mid-stream', async () => {
    fake.setBehavior({ rules: [{ api: 'azure', times: 1, fault: { type: 'status', status: 429, retryAfter: 2 } }, { api: 'azure', stream: true, fault: { type: 'error_event', afterChunks: 1 } }] });
    const err = await azure.chat.completions.create({ model: 'dep', messages: [{ role: 'user', content: 'x' }] }).catch((e: unknown) => e);
    expect(err).toMatchObject({ status: 429 });
    expect((err as { headers: Headers }).headers.get('retry-after')).toBe('2');
    const stream = await azure.chat.completions.create({ model: 'dep', messages: [{ role: 'user', content: 'a b c' }], stream: true });
    await expect(
      (async () => {
        for await (const _ of stream) void _;
      })(),
    ).rejects.toThrow(/server had an error/);
  });
});

describe('Azure OpenAI v1 Responses API', () => {
  const v1 = () => new OpenAI({ baseURL: `${fake.url}/openai/v1/`, apiKey: 'az-key', maxRetries: 0, timeout: 10_000 });

  it('answers the OpenAI client on /openai/v1/responses, the key as bearer, the deployment as model, no api-version', async () => {
    const res = await v1().responses.create({ model: 'gpt4o-prod', input: 'hello responses' });
    expect(res.output_text).toBe('echo: hello responses');
    expect(res.model).toBe('gpt4o-prod');
    expect(res.usage?.output_tokens).toBe(3);
    expect(fake.requests[0]).toMatchObject({ path: '/openai/v1/responses' });
    expect(fake.requests[0].headers.authorization).toBe('Bearer az-key');
  });

  it('streams the typed events the SDK assembles, with the api-key header and api-version=preview of the AzureOpenAI client', async () => {
    const azureV1 = new AzureOpenAI({ baseURL: `${fake.url}/openai/v1`, apiKey: 'az-key', apiVersion: 'preview', maxRetries: 0 });
    const stream = azureV1.responses.stream({ model: 'dep', input: 'a b c' });
    const types: string[] = [];
    let text = '';
    for await (const ev of stream) {
      types.push(ev.type);
      if (ev.type === 'response.output_text.delta') text += ev.delta;
    }
    const final = await stream.finalResponse();
    expect(text).toBe('echo: a b c');
    expect(final.output_text).toBe('echo: a b c');
    expect(final.status).toBe('completed');
    expect(types[0]).toBe('response.created');
    expect(types.at(-1)).toBe('response.completed');
    expect(fake.requests[0].headers['api-key']).toBe('az-key');
    expect(fake.requests[0].path).toBe('/openai/v1/responses');
  });

  it('takes an Entra ID token as bearer, and refuses a wrong key, a dated api-version and a bad body as Azure does', async () => {
    const tokenRes = await request(`${fake.url}/tenant-1/oauth2/v2.0/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'client_credentials', client_id: 'c', scope: 'https://cognitiveservices.azure.com/.default', client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer', client_assertion: 'jwt' }).toString(),
    });
    const { access_token: token } = (await tokenRes.body.json()) as { access_token: string };
    const entra = new OpenAI({ baseURL: `${fake.url}/openai/v1/`, apiKey: async () => token, maxRetries: 0 });
    expect((await entra.responses.create({ model: 'dep', input: 'hi' })).output_text).toBe('echo: hi');

    const wrong = new OpenAI({ baseURL: `${fake.url}/openai/v1/`, apiKey: 'nope', maxRetries: 0 });
    await expect(wrong.responses.create({ model: 'dep', input: 'hi' })).rejects.toMatchObject({ status: 401 });
    const dated = new AzureOpenAI({ baseURL: `${fake.url}/openai/v1`, apiKey: 'az-key', apiVersion: '2024-10-21', maxRetries: 0 });
    await expect(dated.responses.create({ model: 'dep', input: 'hi' })).rejects.toMatchObject({ status: 400, code: 'BadRequest' });
    await expect(v1().responses.create({ model: 'dep', input: 'hi', max_output_tokens: 3 })).rejects.toMatchObject({ status: 400, param: 'max_output_tokens' });
  });

  it('misbehaves on demand for api azure: 429 with Retry-After, an error event mid-stream', async () => {
    fake.setBehavior({ rules: [{ api: 'azure', times: 1, fault: { type: 'status', status: 429, retryAfter: 3 } }, { api: 'azure', stream: true, fault: { type: 'error_event', afterChunks: 1 } }] });
    const err = await v1().responses.create({ model: 'dep', input: 'x' }).catch((e: unknown) => e);
    expect(err).toMatchObject({ status: 429 });
    expect((err as { headers: Headers }).headers.get('retry-after')).toBe('3');
    const stream = await v1().responses.create({ model: 'dep', input: 'a b c', stream: true });
    await expect(
      (async () => {
        for await (const _ of stream) void _;
      })(),
    ).rejects.toThrow(/server had an error/);
    // The second rule steers streams only.
    expect((await v1().responses.create({ model: 'dep', input: 'ok' })).output_text).toBe('echo: ok');
  });
});
