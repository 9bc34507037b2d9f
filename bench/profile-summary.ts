/**
 * Summarises a V8 CPU profile (`node --cpu-prof`) of the bundle: the top functions by self
 * time, and self time per source module (the bundle's source map maps positions back to
 * node_modules/<pkg> or services/<area>/<file>).
 *
 *   tsx bench/profile-summary.ts <file.cpuprofile> [--top 25] [--bundle build/service.js]
 *
 * Used to write bench/results/<date>-profile.md; `npm run bench -- --cpu-prof` makes the
 * profiles.
 */
import { readFileSync } from 'node:fs';
import { SourceMap } from 'node:module';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
  columnNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
}
interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/** Maps a 0-based bundle position to its source: `node_modules/<pkg>` or the source file. */
function sourceLocator(bundle: string): (line: number, column: number) => { module: string; line?: number } {
  const map = new SourceMap(JSON.parse(readFileSync(`${bundle}.map`, 'utf8')) as ConstructorParameters<typeof SourceMap>[0]);
  return (line, column) => {
    const entry = map.findEntry(line, column) as { originalSource?: string; originalLine?: number };
    const src = (entry.originalSource ?? '').replace(/^.*?(node_modules\/|services\/|contracts\/)/, '$1');
    if (!src) return { module: '(bundle)' };
    if (src.startsWith('node_modules/')) {
      const parts = src.split('/');
      return { module: parts.slice(0, parts[1]!.startsWith('@') ? 3 : 2).join('/') };
    }
    return { module: src.replace(/\.[tj]s$/, ''), line: (entry.originalLine ?? 0) + 1 };
  };
}

/** Markdown tables of the profile's self time: by module and by function. */
export function summarise(profile: CpuProfile, bundle: string, top: number): string {
  const locate = sourceLocator(bundle);
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const self = new Map<number, number>();
  let total = 0;
  for (let i = 0; i < profile.samples.length; i++) {
    const dt = profile.timeDeltas[i] ?? 0;
    self.set(profile.samples[i]!, (self.get(profile.samples[i]!) ?? 0) + dt);
    total += dt;
  }
  const fn = new Map<string, number>();
  const mod = new Map<string, number>();
  for (const [id, t] of self) {
    const { callFrame: cf } = byId.get(id)!;
    const inBundle = cf.url.endsWith('service.js');
    const loc = inBundle ? locate(cf.lineNumber, cf.columnNumber) : undefined;
    const where = loc ? `${loc.module}${loc.line ? `:${loc.line}` : ''}` : cf.url || '(native)';
    const key = `${cf.functionName || '(anonymous)'} — ${where}`;
    fn.set(key, (fn.get(key) ?? 0) + t);
    const m = loc ? loc.module : cf.functionName.startsWith('(') ? cf.functionName : cf.url.startsWith('node:') ? 'node internals' : cf.url || '(native)';
    mod.set(m, (mod.get(m) ?? 0) + t);
  }
  const pct = (t: number) => ((100 * t) / total).toFixed(1);
  const table = (rows: Map<string, number>, head: string) =>
    [`| ${head} | self % |`, '| --- | ---: |', ...[...rows].sort((a, b) => b[1] - a[1]).slice(0, top).map(([k, t]) => `| ${k.replace(/\|/g, '\\|')} | ${pct(t)} |`)].join('\n');
  return `Sampled ${(total / 1e6).toFixed(1)} s.\n\nBy module:\n\n${table(mod, 'module')}\n\nBy function:\n\n${table(fn, 'function')}\n`;
}

if (require.main === module) {
  const { values, positionals } = parseArgs({ allowPositionals: true, options: { top: { type: 'string', default: '25' }, bundle: { type: 'string', default: resolve(__dirname, '../build/service.js') } } });
  if (positionals.length !== 1) {
    process.stderr.write('usage: tsx bench/profile-summary.ts <file.cpuprofile> [--top N] [--bundle build/service.js]\n');
    process.exit(2);
  }
  process.stdout.write(summarise(JSON.parse(readFileSync(positionals[0]!, 'utf8')) as CpuProfile, values.bundle!, Number(values.top)));
}
