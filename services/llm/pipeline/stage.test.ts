import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { answering, callFor, endPlain, nowhere, pipelineHarness, runStages, type PipelineHarness } from '../../../test/support/llm-pipeline';
import { compose, type Stage } from './stage';
import { breakerStage } from './breaker';

let h: PipelineHarness;
beforeAll(async () => {
  h = await pipelineHarness({ providers: [nowhere('a')], models: { chat: [{ provider: 'a', model: 'm' }] } });
});
afterAll(() => h.close());

/** A stage that writes down when it runs before and after the rest, and when the answer ends. */
function tracing(name: string, log: string[]): Stage {
  return {
    name,
    async run(call, next) {
      log.push(`${name}>`);
      const answer = await next(call);
      log.push(`<${name}`);
      answer.onEnd((e) => void log.push(`${name}:${e.kind}`));
      return answer;
    },
  };
}

describe('compose', () => {
  it('runs the stages first outermost, and end listeners innermost first', async () => {
    const log: string[] = [];
    const answer = await runStages([tracing('outer', log), tracing('inner', log)], answering(h), callFor('chat'));
    await endPlain(answer);
    expect(log).toEqual(['outer>', 'inner>', '<inner', '<outer', 'inner:success', 'outer:success']);
  });

  it('refuses two stages with one name', () => {
    const log: string[] = [];
    expect(() => compose([tracing('x', log), tracing('x', log)], answering(h))).toThrow("two stages are named 'x'");
  });

  it('a per-attempt stage placed before routing fails loudly, naming itself', async () => {
    await expect(runStages([breakerStage(h.parts)], answering(h), callFor('chat'))).rejects.toThrow("stage 'breaker' needs a candidate");
  });
});
