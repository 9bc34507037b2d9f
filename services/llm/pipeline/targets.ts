import { badRequest, notFound } from '../../kit/errors';
import { unknownChatFields } from '../../openai';
import { maxOutputTokensOf, requestedMaxTokens } from '../model-limits';
import { resolveTargets, type Candidate } from '../routing';
import type { PipelineParts } from './parts';
import type { LlmCall, Stage } from './stage';

/**
 * Resolves the request's model (an alias, or a model a provider lists) to its targets, keeping
 * those whose max output is at least the `max_tokens` it asks for. As OpenAI does, more than the
 * model can produce is a 400, not a silent clamp: a client asking for a long answer must not get
 * a short one unannounced. An unknown model is a 404 before the cache is consulted.
 */
export function targetsStage(parts: Pick<PipelineParts, 'config' | 'providers' | 'adapters'>): Stage {
  return {
    name: 'targets',
    async run(call, next) {
      const { request } = call;
      const all = resolveTargets(parts.config, parts.providers, request.model);
      if (all.length === 0) {
        throw notFound(`model '${request.model}' does not exist here: it is no alias and no provider lists it (see GET /v1/models)`, 'model_not_found', 'model');
      }
      const targets = capableTargets(parts, call, all);
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

/**
 * The targets that can serve this kind of call: for embeddings, providers whose type has an
 * embeddings API; for a chat request with fields the canonical schema does not know, providers
 * with `passthrough: true` (the field reaches them as sent). None: a 400 that names what is
 * missing, never a silent drop of the field.
 */
function capableTargets(parts: Pick<PipelineParts, 'adapters' | 'providers'>, call: LlmCall, targets: Candidate[]): Candidate[] {
  const model = call.request.model;
  if (call.operation === 'responses') {
    const able = targets.filter((t) => typeof parts.adapters.get(t.provider)?.responses === 'function');
    if (able.length === 0) {
      const names = [...new Set(targets.map((t) => `${t.provider} (${t.config.type})`))].join(', ');
      const speakers = [...parts.providers.values()].filter((p) => typeof parts.adapters.get(p.name)?.responses === 'function').map((p) => `${p.name} (${p.type})`);
      throw badRequest(
        `model '${model}' cannot use the Responses API: its providers (${names}) do not speak it. Providers that do: ${speakers.length > 0 ? speakers.join(', ') : 'none is configured (types openai and azure-openai do)'}; use /v1/chat/completions for the others`,
        'model',
        'responses_unsupported',
      );
    }
    return able;
  }
  if (call.operation === 'embeddings') {
    const able = targets.filter((t) => typeof parts.adapters.get(t.provider)?.embed === 'function');
    if (able.length === 0) {
      const names = [...new Set(targets.map((t) => `${t.provider} (${t.config.type})`))].join(', ');
      throw badRequest(`model '${model}' has no embeddings: its providers (${names}) have no embeddings API`, 'model', 'embeddings_unsupported');
    }
    return able;
  }
  const unknown = unknownChatFields(call.request);
  if (unknown.length === 0) return targets;
  const able = targets.filter((t) => t.config.passthrough === true);
  if (able.length === 0) {
    throw badRequest(
      `'${unknown[0]}' is not a chat completions parameter; provider-specific fields reach only providers with 'passthrough: true', and model '${model}' has none`,
      unknown[0],
      'unknown_parameter',
    );
  }
  return able;
}
