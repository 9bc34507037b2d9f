import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { answering, callFor, nowhere, pipelineHarness, runStages, type PipelineHarness } from '../../../test/support/llm-pipeline';
import { targetsStage } from './targets';

let h: PipelineHarness;
beforeAll(async () => {
  h = await pipelineHarness({
    providers: [nowhere('small', { maxOutputTokens: { m: 100 } }), nowhere('big', { maxOutputTokens: { m: 1000 } })],
    models: { chat: [{ provider: 'small', model: 'm' }, { provider: 'big', model: 'm' }] },
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
});
