/**
 * `GET /v1/stats/prompts/{name}` and `GET /v1/stats/providers` (scope `admin`): the last hour of
 * the services' own aggregates (services/kit/rolling-stats.ts), so the console shows traffic,
 * errors, latency and cost without Prometheus. Every replica reads the same Redis hashes, so
 * every replica answers the same.
 */
import type { FastifyInstance } from 'fastify';
import { PATHS } from '../../contracts';
import { ApiError } from '../kit';
import { checkTemplateName } from '../templates/validation';
import { PROVIDER_STATS_GROUP, STATS_WINDOW_MINUTES, type RollingStats, type StatsSeries } from '../kit/rolling-stats';

/** The stats paths (public API; scope `admin` in ROUTE_SCOPES, route-scopes.ts). */
export const STATS_PATHS = {
  prompt: `${PATHS.statsPrompts}/:name`,
  providers: PATHS.statsProviders,
} as const;

/** What the stats routes read from. */
export interface StatsRoutesOptions {
  prompts: RollingStats;
  providers: RollingStats;
}

function unavailable(err: unknown): ApiError {
  return new ApiError({ status: 503, type: 'dependency_unavailable', message: `stats are unavailable: Redis did not answer (${(err as Error).message})`, code: 'redis_unavailable' });
}

/** Registers the two stats routes (see the module comment). */
export function statsRoutes(options: StatsRoutesOptions) {
  return async (app: FastifyInstance) => {
    app.get<{ Params: { name: string } }>(STATS_PATHS.prompt, async (request) => {
      // The templates service's own rule, so a malformed name is a 400, not an empty answer.
      const name = checkTemplateName(request.params.name);
      await options.prompts.flush();
      const window = await options.prompts.read(name).catch((err: unknown) => {
        throw unavailable(err);
      });
      return {
        object: 'prompt.stats',
        prompt: name,
        window_minutes: STATS_WINDOW_MINUTES,
        from: window.from,
        to: window.to,
        versions: window.series.map((s: StatsSeries) => ({ version: Number(s.series), ...withoutName(s) })),
      };
    });

    app.get(STATS_PATHS.providers, async () => {
      const window = await options.providers.read(PROVIDER_STATS_GROUP).catch((err: unknown) => {
        throw unavailable(err);
      });
      return {
        object: 'provider.stats',
        window_minutes: STATS_WINDOW_MINUTES,
        from: window.from,
        to: window.to,
        providers: window.series.map((s: StatsSeries) => ({ provider: s.series, ...withoutName(s) })),
      };
    });
  };
}

function withoutName(s: StatsSeries): Omit<StatsSeries, 'series'> {
  const { series: _series, ...rest } = s;
  return rest;
}
