// The Azure OpenAI adapter against the fake provider over real sockets: deployment paths and
// api-version, the api-key header, Entra ID tokens through workload identity (a projected token
// file exchanged at the fake's token endpoint), embeddings, the Responses API passed through,
// and errors mapped with their retryability.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { fakeProviderConfig } from '../../../../test/fake-provider/provider-config';
import { startFakeProvider, type FakeProvider } from '../../../../test/fake-provider/server';
import type { ChatCompletionChunk, ChatRequest } from '../../../openai';
import { ProviderError, type ProviderAdapter, type ProviderConfig } from '../../types';
import { WorkloadIdentityCredential } from './entra';
import { createAzureOpenAIAdapter } from '.';

let fake: FakeProvider;
let adapter: ProviderAdapter;
let provider: ProviderConfig;

beforeAll(async () => {
  fake = await startFakeProvider({ azureApiKey: 'az-key' });
  adapter = createAzureOpenAIAdapter();
  provider = fakeProviderConfig(fake, 'azure-openai', { apiKey: 'az-key', azure: { deployments: { 'gpt-4o': 'prod-4o' }, apiVersion: '2024-10-21', auth: 'api-key' } });
});
afterAll(async () => {
  await adapter.close?.();
  await fake.close();
});
afterEach(() => fake.reset());

const request = (content: string, extra: Partial<ChatRequest> = {}): ChatRequest => ({ model: 'gpt-4o', messages: [{ role: 'user', content }], ...extra });

async function collect(it: AsyncIterable<ChatCompletionChunk>): Promise<ChatCompletionChunk[]> {
  const out: ChatCompletionChunk[] = [];
  for await (const c of it) out.push(c);
  return out;
}

describe('azure-openai adapter', () => {
  it('calls the mapped deployment with api-version and the api-key header, OpenAI body otherwise', async () => {
    const res = await adapter.complete(provider, request('hello', { max_tokens: 20, session_id: 's' }), {});
    expect(res.choices[0].message.content).toBe('echo: hello');
    const sent = fake.requests[0];
    expect(sent.path).toBe('/openai/deployments/prod-4o/chat/completions');
    expect(sent.headers['api-key']).toBe('az-key');
    expect(sent.headers.authorization).toBeUndefined();
    expect(sent.body).toEqual({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hello' }], max_completion_tokens: 20, stream: false });

    // A model with no deployment entry is its own deployment name.
    await adapter.complete(provider, { ...request('x'), model: 'gpt-4o-mini' }, {});
    expect(fake.requests[1].path).toBe('/openai/deployments/gpt-4o-mini/chat/completions');
  });

  it('streams with usage last, and tool calls', async () => {
    const chunks = await collect(await adapter.stream(provider, request('a b'), {}));
    expect(chunks.map((c) => c.choices[0]?.delta.content ?? '').join('')).toBe('echo: a b');
    expect(chunks.at(-1)?.usage?.completion_tokens).toBe(3);
    fake.setBehavior({ reply: { toolCall: { name: 'f', arguments: { a: 1 } } } });
    const tool = await adapter.complete(provider, request('go', { tools: [{ type: 'function', function: { name: 'f', parameters: { type: 'object' } } }] }), {});
    expect(tool.choices[0].finish_reason).toBe('tool_calls');
    expect(tool.choices[0].message.tool_calls?.[0].function).toEqual({ name: 'f', arguments: '{"a":1}' });
  });

  it('embeds through the deployment, floats always asked upstream', async () => {
    const res = await adapter.embed!(provider, { model: 'gpt-4o', input: ['a', 'b'], dimensions: 3, encoding_format: 'base64' }, {});
    expect(res.data.map((d) => [d.index, d.embedding.length])).toEqual([
      [0, 3],
      [1, 3],
    ]);
    expect(res.usage.prompt_tokens).toBeGreaterThan(0);
    expect(fake.requests[0]).toMatchObject({ path: '/openai/deployments/prod-4o/embeddings', body: { encoding_format: 'float', dimensions: 3 } });
  });

  it('authenticates with an Entra ID token through workload identity, exchanged once and cached', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pm-wi-'));
    const tokenFile = join(dir, 'token');
    writeFileSync(tokenFile, 'projected-sa-jwt\n');
    const credential = new WorkloadIdentityCredential({ AZURE_CLIENT_ID: 'client-1', AZURE_TENANT_ID: 'tenant-1', AZURE_FEDERATED_TOKEN_FILE: tokenFile, AZURE_AUTHORITY_HOST: `${fake.url}/` });
    const entra = createAzureOpenAIAdapter({ credential });
    const p = { ...provider, apiKey: undefined, azure: { ...provider.azure!, auth: 'entra' as const } };
    try {
      await entra.complete(p, request('one'), {});
      await entra.complete(p, request('two'), {});
      const exchanges = fake.requests.filter((r) => r.path === '/tenant-1/oauth2/v2.0/token');
      expect(exchanges).toHaveLength(1);
      const form = new URLSearchParams(String(exchanges[0].body));
      expect(Object.fromEntries(form)).toMatchObject({ client_id: 'client-1', client_assertion: 'projected-sa-jwt', scope: 'https://cognitiveservices.azure.com/.default' });
      const calls = fake.requests.filter((r) => r.path.endsWith('/chat/completions'));
      expect(calls.map((c) => String(c.headers.authorization))).toEqual([expect.stringMatching(/^Bearer entra-/), calls[0].headers.authorization]);
      expect(calls[0].headers['api-key']).toBeUndefined();
    } finally {
      await entra.close?.();
    }
    const missing = createAzureOpenAIAdapter({ credential: new WorkloadIdentityCredential({}) });
    await expect(missing.complete(p, request('x'), {})).rejects.toMatchObject({ kind: 'auth', message: expect.stringMatching(/AZURE_FEDERATED_TOKEN_FILE/) });
  });

  it('maps errors with their retryability: 429 with Retry-After, 401, 400', async () => {
    fake.setBehavior({ rules: [{ times: 1, fault: { type: 'status', status: 429, retryAfter: 3 } }, { times: 1, fault: { type: 'status', status: 400 } }] });
    const limited = await adapter.complete(provider, request('x'), {}).catch((e: unknown) => e);
    expect(limited).toBeInstanceOf(ProviderError);
    expect(limited).toMatchObject({ kind: 'rate_limited', status: 429, retryAfterMs: 3000, retryable: true });
    await expect(adapter.complete(provider, request('x'), {})).rejects.toMatchObject({ kind: 'bad_request', retryable: false });
    await expect(adapter.complete({ ...provider, apiKey: 'wrong' }, request('x'), {})).rejects.toMatchObject({ kind: 'auth', status: 401 });
  });
});

describe('azure-openai responses', () => {
  it('passes the body to /openai/v1/responses with the deployment as model, plain and streamed', async () => {
    const plain = await adapter.responses!(provider, { model: 'gpt-4o', input: 'hi' }, { stream: false });
    let text = '';
    for await (const b of plain.body) text += Buffer.from(b).toString();
    expect(plain.status).toBe(200);
    expect(JSON.parse(text)).toMatchObject({ object: 'response', model: 'prod-4o', status: 'completed' });
    expect(plain.headers['apim-request-id']).toMatch(/^req_/);
    expect(fake.requests[0]).toMatchObject({ path: '/openai/v1/responses', headers: { 'api-key': 'az-key' }, body: { model: 'prod-4o', input: 'hi', stream: false } });

    const streamed = await adapter.responses!(provider, { model: 'gpt-4o', input: 'hi' }, { stream: true });
    text = '';
    for await (const b of streamed.body) text += Buffer.from(b).toString();
    expect(streamed.headers['content-type']).toMatch(/^text\/event-stream/);
    expect(text).toContain('event: response.completed');
  });

  it('maps the v1 API\'s refusals and failures with their retryability', async () => {
    await expect(adapter.responses!({ ...provider, apiKey: 'wrong' }, { model: 'gpt-4o', input: 'hi' }, { stream: false })).rejects.toMatchObject({ kind: 'auth', status: 401 });
    await expect(adapter.responses!(provider, { model: 'gpt-4o', input: 'hi', max_output_tokens: 2 }, { stream: false })).rejects.toMatchObject({ kind: 'bad_request', retryable: false });
    fake.setBehavior({ rules: [{ api: 'azure', times: 1, fault: { type: 'status', status: 429, retryAfter: 1 } }] });
    await expect(adapter.responses!(provider, { model: 'gpt-4o', input: 'hi' }, { stream: true })).rejects.toMatchObject({ kind: 'rate_limited', retryable: true });
  });
});
