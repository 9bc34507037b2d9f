import type { LoadResult } from './load';
import { peakPerProcess } from './targets';

/** One measured row of the report. */
export interface BenchRow {
  scenario: string;
  label: string;
  mode: 'saturated' | 'paced';
  result: LoadResult;
  /** p99 minus the direct baseline's p99 at the same concurrency and mode (ms). */
  addedP99?: number;
  addedP50?: number;
  /** CPU time the system under test spent per request in this run, in microseconds. */
  cpuUsPerRequest?: number;
}

/** One process's peak RSS (VmHWM) in one scenario. */
export interface RssRow {
  process: string;
  scenario: string;
  peakRssMb: number;
  /** Its peak RSS when it became ready, before any load (not for the load generator). */
  readyRssMb?: number;
}

/** One target of the report and whether this run met it. */
export interface TargetRow {
  target: string;
  value: string;
  met: boolean;
}

/** A throughput ratio the report lists per concurrency: scenario `a`'s req/s over scenario `b`'s. */
export interface RatioRow {
  label: string;
  a: string;
  b: string;
  /** `x` prints 2.31x, `%` prints 23.1 %. */
  unit: 'x' | '%';
}

const fmt = (n: number | undefined, digits = 2) => (n === undefined || Number.isNaN(n) ? '-' : n.toFixed(digits));

/** The Markdown report. */
export function markdownReport(input: {
  date: string;
  machine: string;
  rows: BenchRow[];
  rss: RssRow[];
  targets: TargetRow[];
  notes: string[];
  /** Throughput ratios, one table row each (left out when a run lacks either scenario). */
  ratios?: RatioRow[];
}): string {
  const lines: string[] = [];
  lines.push(`# promptmesh benchmark, ${input.date}`, '', input.machine, '');
  for (const mode of ['saturated', 'paced'] as const) {
    const rows = input.rows.filter((r) => r.mode === mode);
    if (rows.length === 0) continue;
    lines.push(
      mode === 'saturated'
        ? '## Throughput (closed loop: each client sends its next request as soon as the last one finished)'
        : '## Latency at a fixed load (paced: requests start on a schedule, below saturation)',
      '',
      '| scenario | concurrency | req/s | p50 ms | p99 ms | added p50 ms | added p99 ms | CPU us/req | errors |',
      '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
    );
    for (const r of rows) {
      lines.push(
        `| ${r.label} | ${r.result.concurrency} | ${fmt(r.result.rps, 0)} | ${fmt(r.result.p50, 3)} | ${fmt(r.result.p99, 3)} | ${fmt(r.addedP50, 3)} | ${fmt(r.addedP99, 3)} | ${fmt(r.cpuUsPerRequest, 0)} | ${r.result.errors} |`,
      );
    }
    lines.push('');
  }
  const saturated = (id: string, c: number) => input.rows.find((r) => r.scenario === id && r.mode === 'saturated' && r.result.concurrency === c)?.result;
  const concurrencies = [...new Set(input.rows.filter((r) => r.mode === 'saturated').map((r) => r.result.concurrency))].sort((a, b) => a - b);
  const ratioLines = (input.ratios ?? []).flatMap((ratio) => {
    const cells = concurrencies.map((c) => {
      const a = saturated(ratio.a, c);
      const b = saturated(ratio.b, c);
      if (!a || !b || !(b.rps > 0)) return undefined;
      const r = a.rps / b.rps;
      return `${ratio.unit === 'x' ? `${r.toFixed(2)}x` : `${(100 * r).toFixed(1)} %`} (${a.rps.toFixed(0)} / ${b.rps.toFixed(0)})${a.errors + b.errors ? `, ${a.errors + b.errors} errors` : ''}`;
    });
    return cells.some((c) => c !== undefined) ? [`| ${ratio.label} | ${cells.map((c) => c ?? '-').join(' | ')} |`] : [];
  });
  if (ratioLines.length > 0) {
    lines.push('## Throughput ratios (saturated req/s)', '', `| ratio | ${concurrencies.map((c) => `c${c}`).join(' | ')} |`, `| --- |${concurrencies.map(() => ' ---: |').join('')}`, ...ratioLines, '');
  }
  lines.push('## Peak memory per process over the whole bench (VmHWM)', '', '| process | peak RSS MB | reached in |', '| --- | ---: | --- |');
  for (const p of peakPerProcess(input.rss)) lines.push(`| ${p.process} | ${fmt(p.peakRssMb, 1)} | ${p.scenario} |`);
  const scenarios = [...new Set(input.rss.map((r) => r.scenario))];
  const processes = [...new Set(input.rss.map((r) => r.process))];
  lines.push('', 'Per scenario (each scenario starts its own processes; the load generator: the largest of its runs):', '');
  lines.push(`| process | ${scenarios.join(' | ')} |`, `| --- |${scenarios.map(() => ' ---: |').join('')}`);
  for (const proc of processes) {
    const cells = scenarios.map((s) => {
      const values = input.rss.filter((r) => r.process === proc && r.scenario === s).map((r) => r.peakRssMb);
      return values.length ? fmt(Math.max(...values), 1) : '';
    });
    lines.push(`| ${proc} | ${cells.join(' | ')} |`);
  }
  lines.push('', '## Targets', '', '| target | measured | met |', '| --- | --- | --- |');
  for (const t of input.targets) lines.push(`| ${t.target} | ${t.value} | ${t.met ? 'yes' : '**no**'} |`);
  if (input.notes.length > 0) lines.push('', '## Notes', '', ...input.notes.map((n) => `- ${n}`));
  lines.push('');
  return lines.join('\n');
}

/** An SVG line chart of p50 and p99 latency against concurrency, one colour per scenario. */
export function latencyChartSvg(rows: BenchRow[], title: string): string {
  const W = 900;
  const H = 520;
  const left = 70;
  const right = 250;
  const top = 50;
  const bottom = 60;
  const scenarios = [...new Set(rows.map((r) => r.label))];
  const conc = [...new Set(rows.map((r) => r.result.concurrency))].sort((a, b) => a - b);
  const maxY = Math.max(1, ...rows.map((r) => r.result.p99)) * 1.1;
  const x = (c: number) => left + (conc.length === 1 ? 0.5 : conc.indexOf(c) / (conc.length - 1)) * (W - left - right);
  const y = (v: number) => top + (1 - v / maxY) * (H - top - bottom);
  const colours = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f'];
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="12">`);
  out.push(`<rect width="${W}" height="${H}" fill="white"/>`);
  out.push(`<text x="${W / 2 - right / 2}" y="24" text-anchor="middle" font-size="15">${title}</text>`);
  for (let i = 0; i <= 5; i++) {
    const v = (maxY / 5) * i;
    out.push(`<line x1="${left}" x2="${W - right}" y1="${y(v)}" y2="${y(v)}" stroke="#ddd"/>`);
    out.push(`<text x="${left - 8}" y="${y(v) + 4}" text-anchor="end">${v.toFixed(1)}</text>`);
  }
  for (const c of conc) out.push(`<text x="${x(c)}" y="${H - bottom + 20}" text-anchor="middle">${c}</text>`);
  out.push(`<text x="${(W - right + left) / 2}" y="${H - 15}" text-anchor="middle">concurrency (clients)</text>`);
  out.push(`<text transform="translate(18 ${(H - bottom + top) / 2}) rotate(-90)" text-anchor="middle">latency ms (solid p50, dashed p99)</text>`);
  scenarios.forEach((s, i) => {
    const colour = colours[i % colours.length];
    const pts = rows.filter((r) => r.label === s).sort((a, b) => a.result.concurrency - b.result.concurrency);
    for (const [key, dash] of [['p50', ''], ['p99', ' stroke-dasharray="6 4"']] as const) {
      const d = pts.map((r, j) => `${j === 0 ? 'M' : 'L'}${x(r.result.concurrency).toFixed(1)},${y(r.result[key]).toFixed(1)}`).join(' ');
      out.push(`<path d="${d}" fill="none" stroke="${colour}" stroke-width="2"${dash}/>`);
      for (const r of pts) out.push(`<circle cx="${x(r.result.concurrency)}" cy="${y(r.result[key])}" r="3" fill="${colour}"/>`);
    }
    out.push(`<rect x="${W - right + 15}" y="${top + i * 22}" width="14" height="4" fill="${colour}"/>`);
    out.push(`<text x="${W - right + 35}" y="${top + i * 22 + 6}">${s.replace(/&/g, '&amp;').replace(/</g, '&lt;')}</text>`);
  });
  out.push('</svg>');
  return out.join('\n');
}
