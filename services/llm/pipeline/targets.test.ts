import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { answering, callFor, nowhere, pipelineHarness, runStages, type PipelineHarness } from '../../../test/support/llm-pipeline';
import { newEmbeddingsCall } from './stage';
import { targetsStage } from './targets';

let h: PipelineHarness;
beforeAll(async () => {
  h = await pipelineHarness({
    providers: [
      nowhere('small', { maxOutputTokens: { m: 100 } }),
      nowhere('big', { maxOutputTokens: { m: 1000 } }),
      nowhere('vllm', { type: 'openai-compatible', passthrough: true }),
      { name: 'claude', type: 'anthropic', baseUrl: 'http://127.0.0.1:9', timeoutMs: 5000 },
      { name: 'br', type: 'bedrock', region: 'us-east-1', baseUrl: 'http://127.0.0.1:9', timeoutMs: 5000 },
    ],
    models: {
      chat: [{ provider: 'small', model: 'm' }, { provider: 'big', model: 'm' }],
      mixed: [{ provider: 'claude', model: 'c' }, { provider: 'vllm', model: 'v' }, { provider: 'big', model: 'm' }],
      claude: [{ provider: 'claude', model: 'c' }],
      'br-sonnet': [{ provider: 'br', model: 'global.anthropic.claude-sonnet-4-5-20250929-v1:0' }],
      'br-nova': [{ provider: 'br', model: 'us.amazon.nova-pro-v1:0' }, { provider: 'br', model: 'meta.llama3-3-70b-instruct-v1:0' }],
    },
  });
});
afterAll(() => h.close());

describe('targets stage', () => {
  it('hands every target of the alias on', async () => {
    const terminal = answering(h);
    await runStages([targetsStage(h.parts)], terminal, callFor('chat'));
    expect(terminal.calls[0]!.targets.map((t) => t.provider)).toEqual(['small', 'big']);
  });

  it('keeps only the targets that can produce max_tokens', async () => {
    const terminal = answering(h);
    await runStages([targetsStage(h.parts)], terminal, callFor('chat', { body: { max_tokens: 500 } }));
    expect(terminal.calls[0]!.targets.map((t) => t.provider)).toEqual(['big']);
  });

  it('refuses more than any target can produce with a 400 naming the field, without going on', async () => {
    const terminal = answering(h);
    await expect(runStages([targetsStage(h.parts)], terminal, callFor('chat', { body: { max_completion_tokens: 5000 } }))).rejects.toMatchObject({
      statusCode: 400,
      param: 'max_completion_tokens',
      code: 'max_tokens_too_large',
    });
    expect(terminal.calls).toHaveLength(0);
  });

  it('knows Bedrock model IDs by family: up to the cap passes, one more is a 400', async () => {
    const terminal = answering(h);
    await runStages([targetsStage(h.parts)], terminal, callFor('br-sonnet', { body: { max_tokens: 64_000 } }));
    await expect(runStages([targetsStage(h.parts)], terminal, callFor('br-sonnet', { body: { max_tokens: 64_001 } }))).rejects.toMatchObject({ statusCode: 400, param: 'max_tokens', code: 'max_tokens_too_large' });
    await runStages([targetsStage(h.parts)], terminal, callFor('br-nova', { body: { max_tokens: 2_049 } }));
    expect(terminal.calls.at(-1)!.targets.map((t) => t.model)).toEqual(['us.amazon.nova-pro-v1:0']);
    await expect(runStages([targetsStage(h.parts)], terminal, callFor('br-nova', { body: { max_completion_tokens: 10_001 } }))).rejects.toMatchObject({ statusCode: 400, param: 'max_completion_tokens' });
    expect(terminal.calls).toHaveLength(2);
  });

  it('answers an unknown model with a 404 model_not_found', async () => {
    const terminal = answering(h);
    await expect(runStages([targetsStage(h.parts)], terminal, callFor('nope'))).rejects.toMatchObject({ statusCode: 404, param: 'model', code: 'model_not_found' });
    expect(terminal.calls).toHaveLength(0);
  });

  it('sends fields nobody knows only to passthrough targets, and names the field when there are none', async () => {
    const terminal = answering(h);
    await runStages([targetsStage(h.parts)], terminal, callFor('mixed', { body: { top_k: 5 } }));
    expect(terminal.calls[0]!.targets.map((t) => t.provider)).toEqual(['vllm']);
    await expect(runStages([targetsStage(h.parts)], terminal, callFor('chat', { body: { top_k: 5 } }))).rejects.toMatchObject({ statusCode: 400, param: 'top_k', code: 'unknown_parameter' });
    expect(terminal.calls).toHaveLength(1);
  });

  it('keeps only targets with embeddings for an embeddings call, and names the providers when none has them', async () => {
    const terminal = answering(h);
    await runStages([targetsStage(h.parts)], terminal, newEmbeddingsCall({ model: 'mixed', input: 'x' }, {}));
    expect(terminal.calls[0]!.targets.map((t) => t.provider)).toEqual(['vllm', 'big']);
    await expect(runStages([targetsStage(h.parts)], terminal, newEmbeddingsCall({ model: 'claude', input: 'x' }, {}))).rejects.toMatchObject({
      statusCode: 400,
      param: 'model',
      code: 'embeddings_unsupported',
      message: expect.stringContaining('claude (anthropic)'),
    });
  });
});
