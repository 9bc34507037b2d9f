// The fake provider's Bedrock side, driven by the official `@aws-sdk/client-bedrock-runtime`:
// if the SDK signs its requests to it and parses its Converse answers and binary event streams,
// the fake speaks Bedrock's wire format; each misbehaviour is observed through the SDK. The
// fake is HTTP/1.1, so the clients use the SDK's HTTP/1.1 handler (as the adapter does).
import { BedrockRuntimeClient, ConverseCommand, ConverseStreamCommand, InvokeModelCommand, type ConverseStreamOutput } from '@aws-sdk/client-bedrock-runtime';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startFakeProvider, type FakeProvider } from './server';

let fake: FakeProvider;
let client: BedrockRuntimeClient;
const MODEL = 'anthropic.claude-3-5-haiku-20241022-v1:0';

beforeAll(async () => {
  fake = await startFakeProvider({ awsAccessKeyId: 'AKIDFAKE' });
  client = new BedrockRuntimeClient({ region: 'us-east-1', endpoint: fake.url, maxAttempts: 1, credentials: { accessKeyId: 'AKIDFAKE', secretAccessKey: 'secret' }, requestHandler: new NodeHttpHandler() });
});
afterAll(async () => {
  client.destroy();
  await fake.close();
});
afterEach(() => fake.reset());

const user = (text: string) => [{ role: 'user' as const, content: [{ text }] }];

async function events(stream: AsyncIterable<ConverseStreamOutput> | undefined): Promise<ConverseStreamOutput[]> {
  const out: ConverseStreamOutput[] = [];
  for await (const e of stream ?? []) out.push(e);
  return out;
}

describe('Bedrock Converse wire format', () => {
  it('answers Converse with a SigV4-signed request, usage and stop reason', async () => {
    const res = await client.send(new ConverseCommand({ modelId: MODEL, messages: user('hello bedrock'), system: [{ text: 'be brief' }], inferenceConfig: { maxTokens: 100 } }));
    expect(res.output?.message?.content).toEqual([{ text: 'echo: hello bedrock' }]);
    expect(res.stopReason).toBe('end_turn');
    expect(res.usage).toMatchObject({ outputTokens: 3 });
    expect(res.usage!.totalTokens).toBe(res.usage!.inputTokens! + 3);
    // The model ID with its colon travels encoded in the path.
    expect(fake.requests[0].path).toBe(`/model/${encodeURIComponent(MODEL)}/converse`);
    expect(String(fake.requests[0].headers.authorization)).toMatch(/^AWS4-HMAC-SHA256 Credential=AKIDFAKE\/\d{8}\/us-east-1\/bedrock\/aws4_request/);
  });

  it('streams the binary event stream the SDK decodes: text, tool use in pieces, reasoning, metadata', async () => {
    const text = await events((await client.send(new ConverseStreamCommand({ modelId: MODEL, messages: user('a b c') }))).stream);
    expect(text[0]).toMatchObject({ messageStart: { role: 'assistant' } });
    expect(text.map((e) => e.contentBlockDelta?.delta?.text ?? '').join('')).toBe('echo: a b c');
    expect(text.find((e) => e.messageStop)?.messageStop?.stopReason).toBe('end_turn');
    expect(text.at(-1)?.metadata?.usage?.outputTokens).toBe(4);

    fake.setBehavior({ reply: { reasoning: 'think first', toolCalls: [{ name: 'lookup', arguments: { q: 'x' } }, { name: 'other', arguments: {} }] } });
    const tools = await events(
      (
        await client.send(
          new ConverseStreamCommand({ modelId: MODEL, messages: user('go'), toolConfig: { tools: [{ toolSpec: { name: 'lookup', inputSchema: { json: { type: 'object' } } } }, { toolSpec: { name: 'other', inputSchema: { json: {} } } }] } }),
        )
      ).stream,
    );
    expect(tools.filter((e) => e.contentBlockStart?.start?.toolUse).map((e) => e.contentBlockStart!.start!.toolUse!.name)).toEqual(['lookup', 'other']);
    expect(tools.filter((e) => e.contentBlockDelta?.delta?.toolUse && e.contentBlockDelta.contentBlockIndex === 1).map((e) => e.contentBlockDelta!.delta!.toolUse!.input).join('')).toBe('{"q":"x"}');
    expect(tools.map((e) => e.contentBlockDelta?.delta?.reasoningContent?.text ?? '').join('')).toBe('think first');
    expect(tools.find((e) => e.messageStop)?.messageStop?.stopReason).toBe('tool_use');
  });

  it('checks bodies as Bedrock does: alternation, tool results, toolConfig', async () => {
    const twoUsers = client.send(new ConverseCommand({ modelId: MODEL, messages: [...user('a'), ...user('b')] }));
    await expect(twoUsers).rejects.toMatchObject({ name: 'ValidationException', message: expect.stringMatching(/alternate/) });
    const noConfig = client.send(
      new ConverseCommand({
        modelId: MODEL,
        messages: [...user('a'), { role: 'assistant', content: [{ toolUse: { toolUseId: 't1', name: 'f', input: {} } }] }, { role: 'user', content: [{ toolResult: { toolUseId: 't1', content: [{ text: 'r' }] } }] }],
      }),
    );
    await expect(noConfig).rejects.toMatchObject({ name: 'ValidationException', message: expect.stringMatching(/toolConfig/) });
    const unsigned = new BedrockRuntimeClient({ region: 'us-east-1', endpoint: fake.url, maxAttempts: 1, credentials: { accessKeyId: 'OTHER', secretAccessKey: 's' }, requestHandler: new NodeHttpHandler() });
    await expect(unsigned.send(new ConverseCommand({ modelId: MODEL, messages: user('a') }))).rejects.toMatchObject({ name: 'UnrecognizedClientException', $metadata: { httpStatusCode: 403 } });
    unsigned.destroy();
  });

  it('misbehaves on demand: throttling status, an exception frame mid-stream, a corrupted frame', async () => {
    fake.setBehavior({
      rules: [
        { api: 'bedrock', stream: false, fault: { type: 'status', status: 429 } },
        { api: 'bedrock', stream: true, times: 1, fault: { type: 'error_event', afterChunks: 1 } },
        { api: 'bedrock', stream: true, fault: { type: 'malformed' } },
      ],
    });
    await expect(client.send(new ConverseCommand({ modelId: MODEL, messages: user('x') }))).rejects.toMatchObject({ name: 'ThrottlingException', $metadata: { httpStatusCode: 429 } });
    const errored = (await client.send(new ConverseStreamCommand({ modelId: MODEL, messages: user('a b c') }))).stream;
    await expect(events(errored)).rejects.toMatchObject({ name: 'ServiceUnavailableException' });
    const broken = (await client.send(new ConverseStreamCommand({ modelId: MODEL, messages: user('a b c') }))).stream;
    await expect(events(broken)).rejects.toThrow(/checksum|crc/i);
  });

  it('serves InvokeModel embeddings for Titan and Cohere bodies', async () => {
    const titan = await client.send(new InvokeModelCommand({ modelId: 'amazon.titan-embed-text-v2:0', contentType: 'application/json', body: JSON.stringify({ inputText: 'hello', dimensions: 256 }) }));
    const t = JSON.parse(new TextDecoder().decode(titan.body));
    expect(t.embedding).toHaveLength(256);
    expect(t.inputTextTokenCount).toBeGreaterThan(0);
    const cohere = await client.send(new InvokeModelCommand({ modelId: 'cohere.embed-english-v3', contentType: 'application/json', body: JSON.stringify({ texts: ['a', 'b'], input_type: 'search_document' }) }));
    expect(JSON.parse(new TextDecoder().decode(cohere.body)).embeddings).toHaveLength(2);
  });
});
