import type { KeysOverheadResult } from '../keys-overhead';
import type { BenchRow, RssRow, TargetRow } from './report';

/** What the key, limit and budget checks may add to a plain completion at p50 (issue 14, item 7), in ms. */
export const KEYS_OVERHEAD_P50_MS = 0.2;

/** The memory ceiling of every process (issue 10), in MB. */
export const RSS_CEILING_MB = 150;

/**
 * Processes the RSS target does not cover: the system promptmesh is compared with is not ours
 * to shrink (its figure is still reported).
 */
const RSS_EXEMPT = new Set(['Portkey gateway']);

/**
 * The largest tolerated drop from the lowest to the highest concurrency before "throughput must
 * not fall" counts as missed: run-to-run noise of one short run on a shared machine.
 */
export const THROUGHPUT_NOISE = 0.05;

/** Each process's largest peak RSS over the whole bench, and the scenario it was reached in. */
export function peakPerProcess(rss: RssRow[]): RssRow[] {
  const peaks = new Map<string, RssRow>();
  for (const r of rss) {
    const seen = peaks.get(r.process);
    if (!seen || !(seen.peakRssMb >= r.peakRssMb)) peaks.set(r.process, r);
  }
  return [...peaks.values()];
}

/**
 * The targets of issue 10, item 6, and the embeddings one of issue 13, item 8, evaluated on one run. A ratio is only met when neither run
 * it compares had errors (fast errors would pass for throughput).
 */
export function evaluateTargets(
  rows: BenchRow[],
  rss: RssRow[],
  options: { concurrencies: number[]; pacedRate: number; keysOverhead?: KeysOverheadResult },
): TargetRow[] {
  const find = (id: string, mode: BenchRow['mode'], c?: number) => rows.find((r) => r.scenario === id && r.mode === mode && (c === undefined || r.result.concurrency === c))?.result;
  const targets: TargetRow[] = [];
  const ratio = (target: string, a: ReturnType<typeof find>, b: ReturnType<typeof find>, min: number, unit: 'x' | '%') => {
    if (!a || !b) return;
    const r = a.rps / b.rps;
    const errors = a.errors + b.errors;
    const value = `${unit === 'x' ? `${r.toFixed(2)}x` : `${(100 * r).toFixed(1)} %`} (${a.rps.toFixed(0)} / ${b.rps.toFixed(0)} req/s)${errors ? `, ${errors} errors` : ''}`;
    targets.push({ target, value, met: r >= min && errors === 0 });
  };
  for (const c of options.concurrencies) {
    ratio(`plain completion, c${c}: >= 10x Portkey req/s`, find('pm-plain', 'saturated', c), find('portkey', 'saturated', c), 10, 'x');
    ratio(`plain completion, c${c}: >= 30% of the fake provider direct`, find('pm-plain', 'saturated', c), find('direct', 'saturated', c), 0.3, '%');
  }
  for (const c of options.concurrencies) {
    ratio(`full prompt path, c${c}: >= 4x Portkey plain`, find('pm-full', 'saturated', c), find('portkey', 'saturated', c), 4, 'x');
  }
  for (const c of options.concurrencies) {
    ratio(`cache hit, c${c}: >= 50% of direct`, find('pm-hit', 'saturated', c), find('direct', 'saturated', c), 0.5, '%');
  }
  // Issue 13, item 8: embeddings beside Portkey (a cache miss every request, the same batches).
  for (const c of options.concurrencies) {
    ratio(`embeddings, c${c}: >= Portkey req/s`, find('emb-pm', 'saturated', c), find('emb-portkey', 'saturated', c), 1, 'x');
  }
  const paced = find('pm-plain', 'paced');
  const pacedDirect = find('direct', 'paced');
  if (paced && pacedDirect) {
    const p50 = paced.p50 - pacedDirect.p50;
    const p99 = paced.p99 - pacedDirect.p99;
    const errors = paced.errors ? `, ${paced.errors} errors` : '';
    targets.push({ target: `paced ${options.pacedRate} req/s, plain: added p50 <= 0.3 ms`, value: `${p50.toFixed(3)} ms (${paced.p50.toFixed(3)} - ${pacedDirect.p50.toFixed(3)})${errors}`, met: p50 <= 0.3 && !paced.errors });
    targets.push({ target: `paced ${options.pacedRate} req/s, plain: added p99 <= 3 ms`, value: `${p99.toFixed(3)} ms (${paced.p99.toFixed(3)} - ${pacedDirect.p99.toFixed(3)})${errors}`, met: p99 <= 3 && !paced.errors });
  }
  const keys = options.keysOverhead;
  if (keys) {
    const errors = keys.rows.reduce((n, r) => n + r.errors, 0);
    const row = (t: 'off' | 'file' | 'on') => keys.rows.find((r) => r.target === t)!;
    targets.push({
      target: `keys, limits, budget add <= ${KEYS_OVERHEAD_P50_MS} ms p50 (virtual key with every limit and budget vs auth off, same run)`,
      value:
        `${keys.added.on.p50.toFixed(3)} ms (${row('on').p50.toFixed(3)} - ${row('off').p50.toFixed(3)}); keys-file key ${keys.added.file.p50.toFixed(3)} ms; ` +
        `load ${keys.loadAverage.start.toFixed(1)}${errors ? `, ${errors} errors` : ''}`,
      met: keys.added.on.p50 <= KEYS_OVERHEAD_P50_MS && errors === 0,
    });
  }
  const peaks = peakPerProcess(rss).filter((p) => !RSS_EXEMPT.has(p.process));
  if (peaks.length > 0) {
    const worst = peaks.reduce((a, b) => (b.peakRssMb > a.peakRssMb ? b : a));
    targets.push({
      target: `peak RSS of every process over the whole bench <= ${RSS_CEILING_MB} MB (the tokenizer included; Portkey not ours)`,
      value: `max ${worst.peakRssMb.toFixed(1)} MB (${worst.process}, ${worst.scenario})`,
      met: peaks.every((p) => p.peakRssMb <= RSS_CEILING_MB),
    });
  }
  const low = Math.min(...options.concurrencies);
  const high = Math.max(...options.concurrencies);
  if (low !== high) {
    const falls: string[] = [];
    const seen: string[] = [];
    for (const id of ['pm-plain', 'pm-full', 'pm-hit']) {
      const a = find(id, 'saturated', low);
      const b = find(id, 'saturated', high);
      if (!a || !b) continue;
      const r = b.rps / a.rps;
      seen.push(`${id} ${(100 * r).toFixed(0)} %`);
      if (r < 1 - THROUGHPUT_NOISE) falls.push(id);
    }
    if (seen.length > 0) {
      targets.push({
        target: `throughput does not fall from c${low} to c${high} (c${high} >= ${100 * (1 - THROUGHPUT_NOISE)} % of c${low})`,
        value: seen.join(', '),
        met: falls.length === 0,
      });
    }
  }
  return targets;
}
