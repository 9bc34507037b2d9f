/**
 * Summarises a V8 CPU profile (`node --cpu-prof`) of the bundle: the top functions by self
 * time, and self time per source module (the bundle's `// path` markers map lines back to
 * node_modules/<pkg> or services/<area>/<file>).
 *
 *   tsx bench/profile-summary.ts <file.cpuprofile> [--top 25] [--bundle build/service.js]
 *
 * Used to write bench/results/<date>-profile.md; `npm run bench -- --cpu-prof` makes the
 * profiles.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
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

/** Sorted [firstLine, module] pairs from esbuild's `// path/of/module.js` comments. */
function bundleModules(bundle: string): Array<[number, string]> {
  const out: Array<[number, string]> = [];
  const lines = readFileSync(bundle, 'utf8').split('\n');
  for (let i = 0; i < lines.length; i++) {
    const m = /^\/\/ ((?:node_modules|services|contracts)\/\S+)$/.exec(lines[i]!);
    if (!m) continue;
    const path = m[1]!;
    const pkg = path.startsWith('node_modules/')
      ? path.split('/').slice(0, path.split('/')[1]!.startsWith('@') ? 3 : 2).join('/')
      : path.replace(/\.[tj]s$/, '');
    out.push([i, pkg]);
  }
  return out;
}

function moduleOf(modules: Array<[number, string]>, line: number): string {
  let lo = 0;
  let hi = modules.length - 1;
  let found = '(bundle prelude)';
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (modules[mid]![0] <= line) {
      found = modules[mid]![1];
      lo = mid + 1;
    } else hi = mid - 1;
  }
  return found;
}

/** Markdown tables of the profile's self time: by module and by function. */
export function summarise(profile: CpuProfile, bundle: string, top: number): string {
  const modules = bundleModules(bundle);
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
    const where = cf.url.endsWith('service.js') ? moduleOf(modules, cf.lineNumber) : cf.url ? cf.url.replace(/^.*\/node_modules\//, '').replace(/^node:/, 'node:') : '(native)';
    const key = `${cf.functionName || '(anonymous)'} — ${where}${cf.url.endsWith('service.js') ? `:${cf.lineNumber + 1}` : ''}`;
    fn.set(key, (fn.get(key) ?? 0) + t);
    const m = cf.url.endsWith('service.js') ? moduleOf(modules, cf.lineNumber) : cf.functionName.startsWith('(') ? cf.functionName : cf.url.startsWith('node:') ? 'node internals' : cf.url || '(native)';
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
