import type { LlmConfig, ModelTarget, RoutingStrategy } from './config';
import type { ProviderConfig } from './types';

/**
 * Routing policy: which provider targets a requested model resolves to, and in which order
 * they are tried.
 */

/** A target with its provider resolved. */
export interface Candidate extends ModelTarget {
  config: ProviderConfig;
}

/** The targets of a requested model: its alias targets, or every provider that lists the model. */
export function resolveTargets(config: LlmConfig, providers: ReadonlyMap<string, ProviderConfig>, model: string): Candidate[] {
  const alias = Object.hasOwn(config.models, model) ? config.models[model] : undefined;
  if (alias) return alias.map((t) => ({ ...t, config: providers.get(t.provider)! }));
  const out: Candidate[] = [];
  for (const p of config.providers) {
    if (p.models?.includes(model) || (p.prices && Object.hasOwn(p.prices, model))) out.push({ provider: p.name, model, weight: 1, config: p });
  }
  return out;
}

/** Every model name a client may send: aliases first, then provider models. */
export function listModels(config: LlmConfig): Array<{ id: string; owned_by: string; kind: 'alias' | 'provider' }> {
  const seen = new Set<string>();
  const out: Array<{ id: string; owned_by: string; kind: 'alias' | 'provider' }> = [];
  for (const alias of Object.keys(config.models)) {
    seen.add(alias);
    out.push({ id: alias, owned_by: 'promptmesh', kind: 'alias' });
  }
  for (const p of config.providers) {
    const names = new Set([...(p.models ?? []), ...Object.keys(p.prices ?? {})]);
    for (const name of names) {
      if (seen.has(name)) continue;
      seen.add(name);
      out.push({ id: name, owned_by: p.name, kind: 'provider' });
    }
  }
  return out;
}

/**
 * An exponentially weighted moving average of observed latency per provider and model (the
 * `least-latency` strategy's estimate). New observations weigh `alpha`.
 */
export class LatencyTracker {
  private readonly estimates = new Map<string, number>();

  constructor(private readonly alpha = 0.2) {}

  observe(provider: string, model: string, ms: number): void {
    const key = `${provider}\u0000${model}`;
    const prev = this.estimates.get(key);
    this.estimates.set(key, prev === undefined ? ms : prev + this.alpha * (ms - prev));
  }

  /** The estimate in ms, or undefined before the first observation. */
  estimate(provider: string, model: string): number | undefined {
    return this.estimates.get(`${provider}\u0000${model}`);
  }

  /** Estimates of one provider, by model. */
  ofProvider(provider: string): Record<string, number> {
    const out: Record<string, number> = {};
    for (const [key, ms] of this.estimates) {
      const [p, m] = key.split('\u0000');
      if (p === provider) out[m!] = Math.round(ms * 100) / 100;
    }
    return out;
  }
}

/**
 * Orders candidates by strategy. `weighted` draws the first by weight and the rest likewise
 * without replacement (zero-weight targets come last, in file order: fallbacks only);
 * `priority` keeps file order; `least-latency` puts unmeasured targets first (so each gets
 * measured), then the lowest estimate; `cheapest` sorts by input + output price (unpriced last).
 */
export function orderCandidates(
  candidates: readonly Candidate[],
  strategy: RoutingStrategy,
  latency: LatencyTracker,
  random: () => number = Math.random,
): Candidate[] {
  switch (strategy) {
    case 'priority':
      return [...candidates];
    case 'least-latency':
      return stableSort(candidates, (c) => latency.estimate(c.provider, c.model) ?? -1);
    case 'cheapest':
      return stableSort(candidates, (c) => {
        const price = c.config.prices?.[c.model];
        return price ? price.input + price.output : Number.POSITIVE_INFINITY;
      });
    case 'weighted': {
      const pool = candidates.filter((c) => c.weight > 0);
      const out: Candidate[] = [];
      while (pool.length > 0) {
        const total = pool.reduce((s, c) => s + c.weight, 0);
        let r = random() * total;
        let i = 0;
        for (; i < pool.length - 1; i++) {
          r -= pool[i]!.weight;
          if (r < 0) break;
        }
        out.push(pool.splice(i, 1)[0]!);
      }
      return [...out, ...candidates.filter((c) => c.weight <= 0)];
    }
  }
}

function stableSort<T>(items: readonly T[], key: (item: T) => number): T[] {
  return items
    .map((item, i) => ({ item, i, k: key(item) }))
    .sort((a, b) => a.k - b.k || a.i - b.i)
    .map((x) => x.item);
}
