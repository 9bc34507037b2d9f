import { badRequest, notFound } from '../../kit/errors';
import { maxOutputTokensOf, requestedMaxTokens } from '../model-limits';
import { resolveTargets } from '../routing';
import type { PipelineParts } from './parts';
import type { Stage } from './stage';

/**
 * Resolves the request's model (an alias, or a model a provider lists) to its targets, keeping
 * those whose max output is at least the `max_tokens` it asks for. As OpenAI does, more than the
 * model can produce is a 400, not a silent clamp: a client asking for a long answer must not get
 * a short one unannounced. An unknown model is a 404 before the cache is consulted.
 */
export function targetsStage(parts: Pick<PipelineParts, 'config' | 'providers'>): Stage {
  return {
    name: 'targets',
    async run(call, next) {
      const { request } = call;
      const targets = resolveTargets(parts.config, parts.providers, request.model);
      if (targets.length === 0) {
        throw notFound(`model '${request.model}' does not exist here: it is no alias and no provider lists it (see GET /v1/models)`, 'model_not_found', 'model');
      }
      const asked = requestedMaxTokens(request);
      if (!asked) return next({ ...call, targets });
      const fitting = targets.filter((t) => {
        const cap = maxOutputTokensOf(t.config, t.model);
        return cap === undefined || asked.value <= cap;
      });
      if (fitting.length === 0) {
        const caps = [...new Set(targets.map((t) => maxOutputTokensOf(t.config, t.model)!))];
        throw badRequest(
          `'${asked.field}' is ${asked.value}, more than model '${request.model}' can produce: at most ${Math.max(...caps)} output tokens`,
          asked.field,
          'max_tokens_too_large',
        );
      }
      return next({ ...call, targets: fitting });
    },
  };
}
