import type { FastifyReply, FastifyRequest, onRequestAsyncHookHandler } from 'fastify';
import { PATHS } from '../../contracts';
import { forbidden, rateLimited, unauthorized, type Logger } from '../kit';
import { ApiKeyStore, bearerToken, type ApiKey, type Scope } from './auth';
import type { KeyRateLimiter } from './key-rate-limit';

declare module 'fastify' {
  interface FastifyRequest {
    /** The API key the request authenticated with; undefined when auth is off. */
    apiKey: ApiKey | undefined;
    /** Parts the router had to go without (`history`, `rate-limit`), for `x-promptmesh-degraded`. */
    degraded: string[] | undefined;
  }
}


/** What {@link authenticate} checks against. */
export interface AuthOptions {
  /** The keys; undefined means auth is off (every request passes, no Redis round trip). */
  keys: ApiKeyStore | undefined;
  /** Per-key requests per minute; undefined means the `rpm` of keys is not enforced. */
  limiter: KeyRateLimiter | undefined;
  logger: Logger;
}

/**
 * Builds an onRequest hook that authenticates the bearer key, checks the scope the route needs
 * (`scopeOf` reads it from the matched route; undefined refuses every key), and takes one
 * request from the key's per-minute budget.
 * When the rate-limit store is down the request passes (fail open) and is marked degraded.
 */
export function authenticate(options: AuthOptions, scopeOf: (request: FastifyRequest) => Scope | undefined): onRequestAsyncHookHandler {
  const { keys, limiter, logger } = options;
  let limiterDown = false;
  return async function authHook(request: FastifyRequest, _reply: FastifyReply) {
    if (!keys) return;
    // Anthropic's SDKs send their key as `x-api-key`: accepted on the Messages route.
    const apiKeyHeader = request.routeOptions.url === PATHS.messages ? request.headers['x-api-key'] : undefined;
    const token = bearerToken(request.headers.authorization) ?? (typeof apiKeyHeader === 'string' && apiKeyHeader !== '' ? apiKeyHeader : undefined);
    if (!token) throw unauthorized('missing API key: send it as "Authorization: Bearer <key>"' + (request.routeOptions.url === PATHS.messages ? ' or "x-api-key: <key>"' : ''));
    const key = keys.verify(token);
    if (!key) throw unauthorized('invalid API key');
    const scope = scopeOf(request);
    // A route without a declared scope is nobody's (fail closed).
    if (scope === undefined) throw forbidden(`route ${request.method} ${request.routeOptions.url ?? request.url} declares no scope; no key may call it`);
    if (!ApiKeyStore.allows(key, scope)) throw forbidden(`API key '${key.id}' lacks the '${scope}' scope this route needs`);
    request.apiKey = key;
    if (key.rpm !== undefined && limiter) {
      let decision;
      try {
        decision = await limiter.take(key.id, key.rpm);
        if (limiterDown) logger.info('rate limits: Redis reachable again');
        limiterDown = false;
      } catch (err) {
        if (!limiterDown) logger.warn({ err: (err as Error).message }, 'rate limits: Redis unreachable; letting requests through (fail open)');
        limiterDown = true;
        (request.degraded ??= []).push('rate-limit');
        return;
      }
      if (!decision.allowed) {
        throw rateLimited(`API key '${key.id}' is over its limit of ${key.rpm} requests per minute`, decision.retryAfterMs);
      }
    }
  };
}
