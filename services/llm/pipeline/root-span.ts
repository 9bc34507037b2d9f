import { ApiError } from '../../kit/errors';
import { SpanKind, SpanStatusCode, startSpan, type Span } from '../../kit/tracing';
import type { Answer } from './answer';
import type { PipelineParts } from './parts';
import type { Stage } from './stage';

/**
 * The request's span (`<operation> <model>`: `chat` or `embeddings`, a child of the caller's context), parent of the provider
 * calls' spans: ends with the provider, model, cache result and usage, or with the error.
 */
export function rootSpanStage(parts: Pick<PipelineParts, 'tracer' | 'providers'>): Stage {
  return {
    name: 'root-span',
    async run(call, next) {
      const { span, context } = startSpan(parts.tracer, `${call.operation} ${call.request.model}`, call.trace, {
        kind: SpanKind.INTERNAL,
        attributes: { 'gen_ai.operation.name': call.operation, 'gen_ai.request.model': call.request.model, 'promptmesh.stream': call.stream },
      });
      let answer: Answer;
      try {
        answer = await next({ ...call, trace: context });
      } catch (err) {
        failSpan(span, err);
        throw err;
      }
      answer.onEnd((ending) => {
        if (ending.kind === 'success') {
          span.setAttributes({ 'promptmesh.provider': answer.provider, 'gen_ai.system': parts.providers.get(answer.provider)?.type ?? 'unknown', 'promptmesh.cache': answer.cache });
          const responseModel = ending.completion?.model;
          if (responseModel) span.setAttribute('gen_ai.response.model', responseModel);
          if (ending.usage) span.setAttributes({ 'gen_ai.usage.input_tokens': ending.usage.prompt_tokens, 'gen_ai.usage.output_tokens': ending.usage.completion_tokens });
          span.end();
        } else if (ending.thrown) {
          failSpan(span, ending.thrown);
        } else {
          span.setAttribute('error.type', 'client_gone');
          span.end();
        }
      });
      return answer;
    },
  };
}

function failSpan(span: Span, err: unknown): void {
  span.setStatus({ code: SpanStatusCode.ERROR, message: (err as Error).message });
  span.setAttribute('error.type', err instanceof ApiError ? (err.code ?? String(err.statusCode)) : (err as Error).name);
  span.end();
}
