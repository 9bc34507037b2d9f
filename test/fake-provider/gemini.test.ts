// The fake provider's Gemini side, driven by the official `@google/genai` SDK in both hostings:
// the Gemini API (key) and Vertex AI (Application Default Credentials, the SDK's google-auth
// library finding the fake's metadata server through GCE_METADATA_HOST, as on GKE).
import { GoogleGenAI } from '@google/genai';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startFakeProvider, type FakeProvider } from './server';

let fake: FakeProvider;
let gemini: GoogleGenAI;
let vertex: GoogleGenAI;

beforeAll(async () => {
  fake = await startFakeProvider({ geminiApiKey: 'g-key' });
  process.env.GCE_METADATA_HOST = `127.0.0.1:${fake.port}`;
  delete process.env.GOOGLE_APPLICATION_CREDENTIALS;
  gemini = new GoogleGenAI({ apiKey: 'g-key', httpOptions: { baseUrl: fake.url } });
  vertex = new GoogleGenAI({ vertexai: true, project: 'fake-project', location: 'us-central1', httpOptions: { baseUrl: fake.url } });
});
afterAll(async () => {
  delete process.env.GCE_METADATA_HOST;
  await fake.close();
});
afterEach(() => fake.reset());

describe('Gemini wire format', () => {
  it('answers generateContent on the Gemini API with the key, usage and finish reason', async () => {
    const res = await gemini.models.generateContent({ model: 'gemini-2.5-flash', contents: 'hello gemini', config: { systemInstruction: 'be brief', maxOutputTokens: 100 } });
    expect(res.text).toBe('echo: hello gemini');
    expect(res.candidates?.[0]?.finishReason).toBe('STOP');
    expect(res.usageMetadata).toMatchObject({ candidatesTokenCount: 3 });
    expect(fake.requests[0].path).toBe('/v1/models/gemini-2.5-flash:generateContent');
    expect(fake.requests[0].headers['x-goog-api-key']).toBe('g-key');
  });

  it('answers on Vertex AI with an ADC token from the metadata server, streaming with alt=sse', async () => {
    const stream = await vertex.models.generateContentStream({ model: 'gemini-2.5-flash', contents: 'a b c' });
    let text = '';
    let usage;
    for await (const chunk of stream) {
      text += chunk.text ?? '';
      if (chunk.usageMetadata) usage = chunk.usageMetadata;
    }
    expect(text).toBe('echo: a b c');
    expect(usage).toMatchObject({ candidatesTokenCount: 4 });
    const call = fake.requests.find((r) => r.path.includes(':streamGenerateContent'))!;
    expect(call.path).toMatch(/^\/v1beta1\/projects\/fake-project\/locations\/us-central1\/publishers\/google\/models\/gemini-2\.5-flash:streamGenerateContent$/);
    expect(String(call.headers.authorization)).toMatch(/^Bearer ya29\.fake-/);
  });

  it('returns function calls (parallel) and thought parts the SDK reads', async () => {
    fake.setBehavior({ reply: { reasoning: 'hmm', toolCalls: [{ name: 'f', arguments: { a: 1 } }, { name: 'g', arguments: { b: 2 } }] } });
    const res = await gemini.models.generateContent({
      model: 'gemini-2.5-flash',
      contents: 'call them',
      config: { tools: [{ functionDeclarations: [{ name: 'f' }, { name: 'g' }] }], thinkingConfig: { thinkingBudget: 1024, includeThoughts: true } },
    });
    expect(res.functionCalls?.map((f) => [f.name, f.args])).toEqual([
      ['f', { a: 1 }],
      ['g', { b: 2 }],
    ]);
    expect(res.candidates?.[0]?.content?.parts?.find((p) => p.thought)?.text).toBe('hmm');
    expect(res.usageMetadata?.thoughtsTokenCount).toBeGreaterThan(0);
  });

  it('refuses bad keys and unpaired function responses as Gemini does, and misbehaves on demand', async () => {
    const wrong = new GoogleGenAI({ apiKey: 'nope', httpOptions: { baseUrl: fake.url } });
    await expect(wrong.models.generateContent({ model: 'm', contents: 'x' })).rejects.toMatchObject({ status: 400 });
    await expect(
      gemini.models.generateContent({ model: 'm', contents: [{ role: 'user', parts: [{ functionResponse: { name: 'f', response: {} } }] }] }),
    ).rejects.toThrow(/function response turn comes immediately after a function call turn/);

    fake.setBehavior({ rules: [{ api: 'gemini', stream: false, fault: { type: 'status', status: 429 } }, { api: 'gemini', stream: true, fault: { type: 'error_event', afterChunks: 1 } }] });
    await expect(gemini.models.generateContent({ model: 'm', contents: 'x' })).rejects.toMatchObject({ status: 429, message: expect.stringMatching(/RESOURCE_EXHAUSTED/) });
    const stream = await gemini.models.generateContentStream({ model: 'm', contents: 'a b c' });
    await expect(
      (async () => {
        for await (const _ of stream) void _;
      })(),
    ).rejects.toThrow(/overloaded/);
  });

  it('serves embeddings: batchEmbedContents on the Gemini API, predict on Vertex AI', async () => {
    const g = await gemini.models.embedContent({ model: 'gemini-embedding-001', contents: ['one', 'two'], config: { outputDimensionality: 8 } });
    expect(g.embeddings?.map((e) => e.values?.length)).toEqual([8, 8]);
    const v = await vertex.models.embedContent({ model: 'text-embedding-005', contents: ['one'], config: { outputDimensionality: 16 } });
    expect(v.embeddings?.[0]?.values).toHaveLength(16);
    expect(fake.requests.map((r) => r.path.split(':').at(-1))).toEqual(expect.arrayContaining(['batchEmbedContents', 'predict']));
  });
});
