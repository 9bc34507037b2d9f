// The Vertex adapter against the fake provider's Gemini side over real sockets, in both
// hostings: Vertex AI with Application Default Credentials (the fake's metadata server, as GKE
// workload identity serves it, or a service-account key) and the Gemini API with a key. Checks
// the translation both ways, refusals naming the field, and errors with their retryability.
import { createVerify, generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { fakeProviderConfig } from '../../../../test/fake-provider/provider-config';
import { startFakeProvider, type FakeProvider } from '../../../../test/fake-provider/server';
import type { ChatCompletionChunk, ChatRequest } from '../../../openai';
import { ProviderError, type ProviderAdapter, type ProviderConfig } from '../../types';
import { ApplicationDefaultCredentials } from './adc';
import { createVertexAdapter } from '.';

const PNG = 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==';
let fake: FakeProvider;
let adapter: ProviderAdapter;
let vertex: ProviderConfig;
let gemini: ProviderConfig;

beforeAll(async () => {
  fake = await startFakeProvider({ geminiApiKey: 'g-key' });
  adapter = createVertexAdapter({ credentials: new ApplicationDefaultCredentials({ GCE_METADATA_HOST: `127.0.0.1:${fake.port}` }) });
  vertex = fakeProviderConfig(fake, 'vertex', { name: 'vertex-ai', vertex: { project: 'my-project', location: 'europe-west4' } });
  gemini = fakeProviderConfig(fake, 'vertex', { name: 'gemini-api', apiKey: 'g-key', vertex: {} });
});
afterAll(async () => {
  await adapter.close?.();
  await fake.close();
});
afterEach(() => fake.reset());

const request = (content: string, extra: Partial<ChatRequest> = {}): ChatRequest => ({ model: 'gemini-2.5-flash', messages: [{ role: 'user', content }], ...extra });
const calls = () => fake.requests.filter((r) => r.method === 'POST');

async function collect(it: AsyncIterable<ChatCompletionChunk>): Promise<ChatCompletionChunk[]> {
  const out: ChatCompletionChunk[] = [];
  for await (const c of it) out.push(c);
  return out;
}

describe('vertex adapter: hostings and credentials', () => {
  it('calls Vertex AI with a workload identity token from the metadata server, fetched once', async () => {
    expect((await adapter.complete(vertex, request('one'), {})).choices[0].message.content).toBe('echo: one');
    await adapter.complete(vertex, request('two'), {});
    expect(fake.requests.filter((r) => r.path.endsWith('/service-accounts/default/token'))).toHaveLength(1);
    expect(calls().map((r) => r.path)).toEqual(Array(2).fill('/v1beta1/projects/my-project/locations/europe-west4/publishers/google/models/gemini-2.5-flash:generateContent'));
    expect(String(calls()[0].headers.authorization)).toMatch(/^Bearer ya29\.fake-/);
  });

  it('calls the Gemini API with the key in x-goog-api-key', async () => {
    await adapter.complete(gemini, request('hi'), {});
    expect(calls()[0]).toMatchObject({ path: '/v1/models/gemini-2.5-flash:generateContent', headers: { 'x-goog-api-key': 'g-key' } });
    expect(calls()[0].headers.authorization).toBeUndefined();
  });

  it('signs a JWT with a service-account key file and exchanges it at its token_uri', async () => {
    const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    let verified = false;
    const tokenServer = createServer((req, res) => {
      let raw = '';
      req.on('data', (c: Buffer) => (raw += c.toString()));
      req.on('end', () => {
        const form = new URLSearchParams(raw);
        const [h, p, s] = String(form.get('assertion')).split('.');
        verified = createVerify('RSA-SHA256').update(`${h}.${p}`).verify(publicKey, Buffer.from(s!, 'base64url'));
        const claims = JSON.parse(Buffer.from(p!, 'base64url').toString()) as Record<string, unknown>;
        const ok = verified && form.get('grant_type') === 'urn:ietf:params:oauth:grant-type:jwt-bearer' && claims.iss === 'sa@my-project.iam.gserviceaccount.com';
        res.writeHead(ok ? 200 : 400, { 'content-type': 'application/json' });
        res.end(JSON.stringify(ok ? { access_token: 'sa-token', expires_in: 3600 } : { error: 'invalid_grant' }));
      });
    });
    await new Promise<void>((r) => tokenServer.listen(0, '127.0.0.1', r));
    const dir = mkdtempSync(join(tmpdir(), 'pm-adc-'));
    const keyFile = join(dir, 'key.json');
    writeFileSync(
      keyFile,
      JSON.stringify({ type: 'service_account', client_email: 'sa@my-project.iam.gserviceaccount.com', private_key: privateKey.export({ type: 'pkcs8', format: 'pem' }), token_uri: `http://127.0.0.1:${(tokenServer.address() as AddressInfo).port}/token` }),
    );
    const adc = new ApplicationDefaultCredentials({ GOOGLE_APPLICATION_CREDENTIALS: keyFile });
    try {
      expect(await adc.token('p')).toBe('sa-token');
      expect(verified).toBe(true);
    } finally {
      tokenServer.close();
    }
    writeFileSync(keyFile, JSON.stringify({ type: 'external_account' }));
    await expect(new ApplicationDefaultCredentials({ GOOGLE_APPLICATION_CREDENTIALS: keyFile }).token('p')).rejects.toMatchObject({ kind: 'auth' });
  });
});

describe('vertex adapter: translation', () => {
  it('sends systemInstruction, contents with model turns, function calls and responses, images, generation config', async () => {
    await adapter.complete(
      vertex,
      {
        model: 'gemini-2.5-flash',
        messages: [
          { role: 'system', content: 'be brief' },
          { role: 'user', content: [{ type: 'text', text: 'look' }, { type: 'image_url', image_url: { url: `data:image/png;base64,${PNG}` } }, { type: 'image_url', image_url: { url: 'gs://bucket/cat.webp' } }] },
          { role: 'assistant', content: null, tool_calls: [{ id: 'c1', type: 'function', function: { name: 'f', arguments: '{"a":1}' } }, { id: 'c2', type: 'function', function: { name: 'g', arguments: '{}' } }] },
          { role: 'tool', tool_call_id: 'c1', content: 'r1' },
          { role: 'tool', tool_call_id: 'c2', content: 'r2' },
          { role: 'user', content: 'and?' },
        ],
        tools: [{ type: 'function', function: { name: 'f', description: 'F', parameters: { type: 'object', properties: { a: { type: 'integer' } } } } }, { type: 'function', function: { name: 'g' } }],
        tool_choice: { type: 'function', function: { name: 'f' } },
        temperature: 1.5,
        top_p: 0.8,
        max_completion_tokens: 300,
        stop: ['X', 'Y'],
        seed: 7,
        presence_penalty: 0.1,
        frequency_penalty: 0.2,
        response_format: { type: 'json_schema', json_schema: { name: 'out', schema: { type: 'object', properties: { v: { type: 'string' } } } } },
        reasoning_effort: 'medium',
        metadata: { team: 'search' },
      },
      {},
    );
    const body = calls()[0].body as any;
    expect(body.systemInstruction).toEqual({ parts: [{ text: 'be brief' }] });
    expect(body.contents.map((c: any) => c.role)).toEqual(['user', 'model', 'user']);
    expect(body.contents[0].parts).toEqual([{ text: 'look' }, { inlineData: { mimeType: 'image/png', data: PNG } }, { fileData: { mimeType: 'image/webp', fileUri: 'gs://bucket/cat.webp' } }]);
    expect(body.contents[1].parts).toEqual([{ functionCall: { name: 'f', args: { a: 1 } } }, { functionCall: { name: 'g', args: {} } }]);
    expect(body.contents[2].parts).toEqual([{ functionResponse: { name: 'f', response: { content: 'r1' } } }, { functionResponse: { name: 'g', response: { content: 'r2' } } }, { text: 'and?' }]);
    expect(body.tools).toEqual([{ functionDeclarations: [{ name: 'f', description: 'F', parametersJsonSchema: { type: 'object', properties: { a: { type: 'integer' } } } }, { name: 'g', parametersJsonSchema: { type: 'object', properties: {} } }] }]);
    expect(body.toolConfig).toEqual({ functionCallingConfig: { mode: 'ANY', allowedFunctionNames: ['f'] } });
    expect(body.generationConfig).toEqual({
      maxOutputTokens: 300,
      temperature: 1.5,
      topP: 0.8,
      seed: 7,
      presencePenalty: 0.1,
      frequencyPenalty: 0.2,
      stopSequences: ['X', 'Y'],
      responseMimeType: 'application/json',
      responseJsonSchema: { type: 'object', properties: { v: { type: 'string' } } },
      thinkingConfig: { thinkingBudget: 8192, includeThoughts: true },
    });
    expect(body.labels).toEqual({ team: 'search' });
  });

  it('answers with n candidates, parallel function calls, reasoning, usage with cached and thinking tokens', async () => {
    const two = await adapter.complete(vertex, request('hello', { n: 2 }), {});
    expect(two.choices.map((c) => [c.index, c.message.content])).toEqual([
      [0, 'echo: hello'],
      [1, 'echo: hello'],
    ]);
    fake.setBehavior({ reply: { reasoning: 'thinking it over', cachedTokens: 2, toolCalls: [{ name: 'f', arguments: { a: 1 } }, { name: 'g', arguments: { b: 2 } }] } });
    const tools = [{ type: 'function', function: { name: 'f' } }, { type: 'function', function: { name: 'g' } }];
    const res = await adapter.complete(vertex, request('go', { tools }), {});
    expect(res.choices[0].finish_reason).toBe('tool_calls');
    expect(res.choices[0].message.reasoning_content).toBe('thinking it over');
    expect(res.choices[0].message.tool_calls?.map((t) => [t.function.name, t.function.arguments])).toEqual([
      ['f', '{"a":1}'],
      ['g', '{"b":2}'],
    ]);
    expect(new Set(res.choices[0].message.tool_calls?.map((t) => t.id)).size).toBe(2);
    expect(res.usage.prompt_tokens_details?.cached_tokens).toBe(2);
    expect((res.usage.completion_tokens_details as { reasoning_tokens: number }).reasoning_tokens).toBeGreaterThan(0);
    expect(res.usage.total_tokens).toBe(res.usage.prompt_tokens + res.usage.completion_tokens);

    const chunks = await collect(await adapter.stream(vertex, request('go', { tools }), {}));
    expect(calls().at(-1)?.path).toMatch(/:streamGenerateContent$/);
    expect(chunks.map((c) => c.choices[0]?.delta.reasoning_content ?? '').join('')).toBe('thinking it over');
    expect(chunks.flatMap((c) => c.choices[0]?.delta.tool_calls ?? []).map((t) => [t.index, t.function?.name])).toEqual([
      [0, 'f'],
      [1, 'g'],
    ]);
    expect(chunks.at(-1)).toMatchObject({ choices: [{ finish_reason: 'tool_calls' }], usage: { prompt_tokens_details: { cached_tokens: 2 } } });
  });

  it('streams text with finish reason length when cut, usage last', async () => {
    const chunks = await collect(await adapter.stream(gemini, request('a b c d e', { max_tokens: 2 }), {}));
    expect(chunks.map((c) => c.choices[0]?.delta.content ?? '').join('')).toBe('echo: a');
    expect(chunks.at(-1)).toMatchObject({ choices: [{ finish_reason: 'length' }], usage: { completion_tokens: 2 } });
  });

  it('refuses what Gemini cannot take with a 400 naming the field, before any call', async () => {
    const cases: Array<[ProviderConfig, Partial<ChatRequest>, string]> = [
      [vertex, { logit_bias: { '1': 1 } }, 'logit_bias'],
      [vertex, { logprobs: true }, 'logprobs'],
      [vertex, { parallel_tool_calls: false, tools: [{ type: 'function', function: { name: 'f' } }] }, 'parallel_tool_calls'],
      [vertex, { tools: [{ type: 'custom', custom: {} }] }, 'tools[0].type'],
      [vertex, { tool_choice: { type: 'function', function: { name: 'nope' } }, tools: [{ type: 'function', function: { name: 'f' } }] }, 'tool_choice.function.name'],
      [vertex, { messages: [{ role: 'user', content: 'x' }, { role: 'tool', tool_call_id: 'zz', content: 'r' }] }, 'messages[1].tool_call_id'],
      [vertex, { messages: [{ role: 'user', content: [{ type: 'file', file: {} }] }] }, 'messages[0].content[0].type'],
      [vertex, { user: 'Not A Label!' }, 'user'],
      [gemini, { user: 'u1' }, 'user'],
      [vertex, { reasoning_effort: 'extreme' }, 'reasoning_effort'],
      [vertex, { store: true }, 'store'],
    ];
    for (const [p, extra, param] of cases) {
      const err = await adapter.complete(p, request('x', extra), {}).catch((e: unknown) => e);
      expect(err, param).toBeInstanceOf(ProviderError);
      expect(err, param).toMatchObject({ kind: 'bad_request', param });
    }
    expect(calls()).toHaveLength(0);
  });
});

describe('vertex adapter: errors and embeddings', () => {
  it('maps Gemini errors with their retryability, before and during a stream', async () => {
    fake.setBehavior({
      rules: [
        { times: 1, fault: { type: 'status', status: 429 } },
        { times: 1, fault: { type: 'status', status: 503 } },
        { times: 1, fault: { type: 'status', status: 400 } },
        { stream: true, times: 1, fault: { type: 'error_event' } },
        { stream: true, times: 1, fault: { type: 'malformed' } },
      ],
    });
    const kinds = [];
    for (let i = 0; i < 3; i++) kinds.push(await adapter.complete(gemini, request('x'), {}).catch((e: ProviderError) => [e.kind, e.status, e.retryable]));
    expect(kinds).toEqual([
      ['rate_limited', 429, true],
      ['overloaded', 503, true],
      ['bad_request', 400, false],
    ]);
    await expect(collect(await adapter.stream(gemini, request('a b c'), {}))).rejects.toMatchObject({ kind: 'overloaded' });
    await expect(collect(await adapter.stream(gemini, request('a b c'), {}))).rejects.toMatchObject({ kind: 'malformed' });
    await expect(adapter.complete({ ...gemini, apiKey: 'bad' }, request('x'), {})).rejects.toMatchObject({ kind: 'bad_request', status: 400 });
  });

  it('embeds with predict on Vertex AI and batchEmbedContents on the Gemini API', async () => {
    const v = await adapter.embed!(vertex, { model: 'text-embedding-005', input: ['a', 'b'], dimensions: 16 }, {});
    expect(v.data.map((d) => d.embedding.length)).toEqual([16, 16]);
    expect(v.usage.prompt_tokens).toBeGreaterThan(0);
    expect(calls()[0]).toMatchObject({ path: expect.stringMatching(/text-embedding-005:predict$/), body: { instances: [{ content: 'a' }, { content: 'b' }], parameters: { outputDimensionality: 16 } } });
    const g = await adapter.embed!(gemini, { model: 'gemini-embedding-001', input: 'hello' }, {});
    expect(g.data[0].embedding.length).toBe(768);
    expect(calls()[1]).toMatchObject({ path: '/v1/models/gemini-embedding-001:batchEmbedContents', body: { requests: [{ model: 'models/gemini-embedding-001', content: { parts: [{ text: 'hello' }] } }] } });
  });
});
