import { SpanKind, SpanStatusCode, startSpan, type Span } from '../../kit/tracing';
import { ProviderError } from '../types';
import type { Answer } from './answer';
import type { PipelineParts } from './parts';
import { candidateOf, type Stage } from './stage';

/**
 * One span per provider call (`<operation> <provider model>`, kind CLIENT, GenAI semantic conventions),
 * a child of the request's span; its context is what the provider call propagates upstream.
 * Ends with the usage and cost, or with the failure kind (`client_gone` when the client left).
 */
export function attemptSpanStage(parts: Pick<PipelineParts, 'tracer'>): Stage {
  return {
    name: 'attempt-span',
    async run(call, next) {
      const c = candidateOf(call, 'attempt-span');
      const { span, context } = startSpan(parts.tracer, `${call.operation} ${c.model}`, call.trace, {
        kind: SpanKind.CLIENT,
        attributes: { 'gen_ai.operation.name': call.operation, 'gen_ai.system': c.config.type, 'gen_ai.request.model': c.model, 'promptmesh.provider': c.provider },
      });
      let answer: Answer;
      try {
        answer = await next({ ...call, trace: context });
      } catch (err) {
        if (err instanceof ProviderError) failSpan(span, err);
        else {
          span.setAttribute('error.type', 'client_gone');
          span.end();
        }
        throw err;
      }
      answer.onEnd((ending) => {
        if (ending.kind === 'failure') return failSpan(span, ending.error);
        if (ending.kind === 'gone') {
          span.setAttribute('error.type', 'client_gone');
          span.end();
          return;
        }
        if (ending.usage) span.setAttributes({ 'gen_ai.usage.input_tokens': ending.usage.prompt_tokens, 'gen_ai.usage.output_tokens': ending.usage.completion_tokens, 'promptmesh.cost_usd': answer.costUsd });
        if (ending.responseModel) span.setAttribute('gen_ai.response.model', ending.responseModel);
        span.end();
      });
      return answer;
    },
  };
}

function failSpan(span: Span, error: ProviderError): void {
  span.setAttribute('error.type', error.kind);
  span.setStatus({ code: SpanStatusCode.ERROR, message: error.message });
  span.end();
}
