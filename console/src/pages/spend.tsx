/**
 * Spend over time by key, team, model or prompt: a chart of the spend per hour or day (the
 * largest groups as lines, the rest summed as "other") and a table of the same rows' totals,
 * both from one `GET /v1/spend?group_by=&interval=&from=&to=` answer.
 */
import { useEffect, useMemo, useState } from 'preact/hooks';
import { api, spend, type KeyInfo, type SpendAnswer, type SpendGroup } from '../api';
import { LineChart } from '../chart';
import { count, usdMicro, when } from '../format';

const GROUPS: Array<[SpendGroup, string]> = [
  ['key', 'Key'],
  ['team', 'Team'],
  ['model', 'Model'],
  ['prompt', 'Prompt'],
];

/** The ranges offered: hourly buckets up to a week, daily beyond. */
const RANGES = {
  '24h': { label: 'Last 24 hours', interval: 'hour', buckets: 24 },
  '7d': { label: 'Last 7 days', interval: 'hour', buckets: 7 * 24 },
  '30d': { label: 'Last 30 days', interval: 'day', buckets: 30 },
} as const;
type Range = keyof typeof RANGES;

/** Axis amounts: significant digits, since a day's spend may be a few micro-dollars. */
const axisUsd = (v: number) => (v === 0 ? '0' : v.toLocaleString('en', { maximumSignificantDigits: 3 }));

/** Groups drawn as their own line; the others are summed into one. */
const MAX_LINES = 5;
const HOUR = 3_600_000;
const DAY = 24 * HOUR;

/** The range's buckets: UTC hours or days, the current (partial) one last. */
export function rangeOf(range: Range, now = new Date()): { from: Date; to: Date; interval: 'hour' | 'day'; starts: number[] } {
  const r = RANGES[range];
  const step = r.interval === 'hour' ? HOUR : DAY;
  const to = Math.floor(now.getTime() / step) * step + step;
  const from = to - r.buckets * step;
  return { from: new Date(from), to: new Date(to), interval: r.interval, starts: Array.from({ length: r.buckets }, (_, i) => from + i * step) };
}

interface Total {
  group: string | null;
  micro: number;
  requests: number;
  input: number;
  cached: number;
  output: number;
}

export function SpendPage() {
  const [group, setGroup] = useState<SpendGroup>('key');
  const [range, setRange] = useState<Range>('24h');
  const [answer, setAnswer] = useState<{ data: SpendAnswer; starts: number[] } | undefined>();
  const [names, setNames] = useState(new Map<string, string>());
  const [error, setError] = useState('');

  useEffect(() => {
    let live = true;
    const load = () => {
      const r = rangeOf(range);
      spend(group, r.from, r.to, r.interval).then(
        (data) => live && (setAnswer({ data, starts: r.starts }), setError('')),
        (err: Error) => live && setError(err.message),
      );
    };
    setAnswer(undefined);
    load();
    const timer = setInterval(load, 30_000);
    return () => ((live = false), clearInterval(timer));
  }, [group, range]);
  useEffect(() => {
    // Key names beside their ids; revoked keys too, their spend stays.
    api<{ data: KeyInfo[] }>('GET', '/v1/keys?include_revoked=true').then(
      (k) => setNames(new Map(k.data.map((x) => [x.id, x.name]))),
      () => undefined,
    );
  }, []);

  const totals = useMemo(() => {
    const by = new Map<string | null, Total>();
    for (const row of answer?.data.data ?? []) {
      const g = (row[answer!.data.group_by] as string | null | undefined) ?? null;
      const t = by.get(g) ?? { group: g, micro: 0, requests: 0, input: 0, cached: 0, output: 0 };
      t.micro += row.micro_usd;
      t.requests += row.requests;
      t.input += row.input_tokens;
      t.cached += row.cached_input_tokens;
      t.output += row.output_tokens;
      by.set(g, t);
    }
    return [...by.values()].sort((a, b) => b.micro - a.micro || b.requests - a.requests);
  }, [answer]);

  const labelOf = (g: string | null) => {
    if (g === null) return `(no ${group})`;
    // File keys are named by their id; a key made through the API has a name and an id.
    const name = group === 'key' ? names.get(g) : undefined;
    return name && name !== g ? `${name} (${g})` : g;
  };

  const chart = useMemo(() => {
    if (!answer) return undefined;
    const index = new Map(answer.starts.map((t, i) => [t, i]));
    const lines = totals.slice(0, MAX_LINES);
    const rest = new Set(totals.slice(MAX_LINES).map((t) => t.group));
    const series = lines.map((t) => ({ group: t.group, label: labelOf(t.group), values: answer.starts.map(() => 0) as Array<number | null> }));
    const other = { label: 'other', values: answer.starts.map(() => 0) as Array<number | null> };
    for (const row of answer.data.data) {
      const i = index.get(Date.parse(row.start!));
      if (i === undefined) continue;
      const g = (row[answer.data.group_by] as string | null | undefined) ?? null;
      const target = rest.has(g) ? other : series.find((s) => s.group === g);
      if (target) target.values[i] = (target.values[i] as number) + row.micro_usd / 1e6;
    }
    return { times: answer.starts, series: [...series.map(({ label, values }) => ({ label, values })), ...(rest.size ? [other] : [])] };
  }, [answer, totals, names]);

  const sum = totals.reduce((a, t) => ({ micro: a.micro + t.micro, requests: a.requests + t.requests, input: a.input + t.input, cached: a.cached + t.cached, output: a.output + t.output }), { micro: 0, requests: 0, input: 0, cached: 0, output: 0 });
  const groupLabel = GROUPS.find(([g]) => g === group)![1];
  const per = RANGES[range].interval;

  return (
    <section aria-labelledby="spend-title">
      <h1 id="spend-title">Spend</h1>
      <div class="toolbar">
        <label for="spend-group">Group by</label>
        <select id="spend-group" value={group} onChange={(e) => setGroup(e.currentTarget.value as SpendGroup)}>
          {GROUPS.map(([g, label]) => (
            <option key={g} value={g}>
              {label}
            </option>
          ))}
        </select>
        <label for="spend-range">Range</label>
        <select id="spend-range" value={range} onChange={(e) => setRange(e.currentTarget.value as Range)}>
          {(Object.keys(RANGES) as Range[]).map((r) => (
            <option key={r} value={r}>
              {RANGES[r].label}
            </option>
          ))}
        </select>
        {answer && (
          <span class="hint">
            {when(answer.data.from)} to {when(answer.data.to)}, per {per}
          </span>
        )}
      </div>
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
      {answer === undefined && !error && <p aria-busy="true">Loading…</p>}
      {chart && <LineChart title={`Spend per ${per} by ${groupLabel.toLowerCase()} (USD)`} times={chart.times} series={chart.series} unit="USD" format={axisUsd} />}
      {answer && (
        <table class="list spend" aria-label={`Spend by ${groupLabel.toLowerCase()}, ${RANGES[range].label.toLowerCase()}`}>
          <thead>
            <tr>
              <th scope="col">{groupLabel}</th>
              <th scope="col">Requests</th>
              <th scope="col">Input tokens</th>
              <th scope="col">Cached input tokens</th>
              <th scope="col">Output tokens</th>
              <th scope="col">Cost (USD)</th>
            </tr>
          </thead>
          <tbody>
            {totals.map((t) => (
              <tr key={t.group ?? ''} data-group={t.group ?? ''}>
                <th scope="row">{labelOf(t.group)}</th>
                <td class="num">{count(t.requests)}</td>
                <td class="num">{count(t.input)}</td>
                <td class="num">{count(t.cached)}</td>
                <td class="num">{count(t.output)}</td>
                <td class="num">{usdMicro(t.micro)}</td>
              </tr>
            ))}
            {totals.length === 0 && (
              <tr>
                <td colSpan={6}>No spend in this range.</td>
              </tr>
            )}
          </tbody>
          <tfoot>
            <tr>
              <th scope="row">Total</th>
              <td class="num">{count(sum.requests)}</td>
              <td class="num">{count(sum.input)}</td>
              <td class="num">{count(sum.cached)}</td>
              <td class="num">{count(sum.output)}</td>
              <td class="num">{usdMicro(sum.micro)}</td>
            </tr>
          </tfoot>
        </table>
      )}
      <p class="hint">From the exact spend ledger in PostgreSQL (GET /v1/spend), in UTC buckets; another replica's last second of calls may still be on its way.</p>
    </section>
  );
}
