/** Providers: breaker state, latency estimate, the last hour's errors and cost; the model aliases and their weights. */
import { useEffect, useMemo, useState } from 'preact/hooks';
import { api, type ProviderStats, type ProvidersAnswer } from '../api';
import { LineChart } from '../chart';
import { ms, percent, usd } from '../format';

export function ProvidersPage() {
  const [status, setStatus] = useState<ProvidersAnswer | undefined>();
  const [stats, setStats] = useState<ProviderStats | undefined>();
  const [error, setError] = useState('');

  const load = () =>
    Promise.all([api<ProvidersAnswer>('GET', '/v1/providers'), api<ProviderStats>('GET', '/v1/stats/providers')]).then(
      ([s, st]) => (setStatus(s), setStats(st), setError('')),
      (err: Error) => setError(err.message),
    );
  useEffect(() => {
    void load();
    const timer = setInterval(() => void load(), 15_000);
    return () => clearInterval(timer);
  }, []);

  const times = stats?.providers[0]?.points.map((p) => p.t) ?? [];
  const series = useMemo(() => (stats?.providers ?? []).map((p) => ({ label: p.provider, values: p.points.map((x) => x.requests) })), [stats]);

  return (
    <section aria-labelledby="providers-title">
      <h1 id="providers-title">Providers</h1>
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
      {status === undefined && !error && <p aria-busy="true">Loading…</p>}
      {status && (
        <table class="list" aria-label="Providers over the last hour">
          <thead>
            <tr>
              <th scope="col">Provider</th>
              <th scope="col">Type</th>
              <th scope="col">Breaker</th>
              <th scope="col">Latency estimate</th>
              <th scope="col">Calls (1 h)</th>
              <th scope="col">Error rate (1 h)</th>
              <th scope="col">p95 (1 h)</th>
              <th scope="col">Cost (1 h)</th>
            </tr>
          </thead>
          <tbody>
            {status.data.map((p) => {
              const s = stats?.providers.find((x) => x.provider === p.name);
              const estimates = Object.entries(p.latencyMs);
              return (
                <tr key={p.name} data-provider={p.name}>
                  <td>{p.name}</td>
                  <td>{p.type}</td>
                  <td>
                    <span class={`state ${p.circuit.state}`}>{p.circuit.state}</span>
                    {p.circuit.state === 'open' && p.circuit.retryInMs !== null && <span class="hint"> (probes in {Math.ceil(p.circuit.retryInMs / 1000)} s)</span>}
                  </td>
                  <td>{estimates.length ? estimates.map(([model, v]) => `${model}: ${ms(v)}`).join(', ') : '–'}</td>
                  <td class="num">{(s?.requests ?? 0).toLocaleString('en')}</td>
                  <td class="num">{percent(s?.error_rate ?? 0)}</td>
                  <td class="num">{ms(s?.latency_ms.p95)}</td>
                  <td class="num">{usd(s?.cost_usd ?? 0)}</td>
                </tr>
              );
            })}
          </tbody>
        </table>
      )}
      {stats && stats.providers.length > 0 && <LineChart title="Provider calls per minute" times={times} series={series} unit="calls" />}
      <h2>Model aliases</h2>
      {status?.aliases && (
        <table class="list" aria-label="Model aliases and their weights">
          <thead>
            <tr>
              <th scope="col">Alias</th>
              <th scope="col">Targets (provider / model: share)</th>
            </tr>
          </thead>
          <tbody>
            {Object.entries(status.aliases).map(([alias, targets]) => {
              const sum = targets.reduce((n, t) => n + t.weight, 0) || 1;
              return (
                <tr key={alias}>
                  <td>{alias}</td>
                  <td>
                    <ul class="targets">
                      {targets.map((t, i) => (
                        <li key={i}>
                          {t.provider} / {t.model}: {Math.round((t.weight / sum) * 100)}% <meter min={0} max={1} value={t.weight / sum} aria-label={`${t.provider} share`} />
                        </li>
                      ))}
                    </ul>
                  </td>
                </tr>
              );
            })}
          </tbody>
        </table>
      )}
      <p class="hint">Figures from the services' own aggregates in Redis (last hour, every replica the same); no Prometheus needed.</p>
    </section>
  );
}
