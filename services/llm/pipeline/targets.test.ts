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
    ],
    models: {
      chat: [{ provider: 'small', model: 'm' }, { provider: 'big', model: 'm' }],
      mixed: [{ provider: 'claude', model: 'c' }, { provider: 'vllm', model: 'v' }, { provider: 'big', model: 'm' }],
      claude: [{ provider: 'claude', model: 'c' }],
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
