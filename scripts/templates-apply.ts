/**
 * Prompts as code: `npm run templates:apply -- <dir> --url <templates url> [--api-key <key>] [--dry-run]`
 *
 * Applies every *.yaml / *.yml / *.json template file of <dir> to the templates service,
 * idempotently, printing one line per file. Exits 1 with a message naming the file and the
 * field when a file is bad (nothing is applied then), and 1 when the service refuses a change.
 * `--url` defaults to $TEMPLATES_URL, `--api-key` to $PROMPTMESH_API_KEY.
 */
import { TemplateFileError, applyTemplates } from '../services/templates/apply';

const USAGE = 'usage: npm run templates:apply -- <dir> --url <templates url> [--api-key <key>] [--dry-run]';

function parseArgs(argv: string[]): { dir: string; url: string; apiKey?: string; dryRun: boolean } {
  let dir: string | undefined;
  let url = process.env.TEMPLATES_URL;
  let apiKey = process.env.PROMPTMESH_API_KEY;
  let dryRun = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const value = (): string => {
      const v = argv[++i];
      if (v === undefined || v.startsWith('--')) throw new Error(`${arg} needs a value\n${USAGE}`);
      return v;
    };
    if (arg === '--url') url = value();
    else if (arg === '--api-key') apiKey = value();
    else if (arg === '--dry-run') dryRun = true;
    else if (arg === '--help' || arg === '-h') {
      process.stdout.write(`${USAGE}\n`);
      process.exit(0);
    } else if (arg.startsWith('--')) throw new Error(`unknown option ${arg}\n${USAGE}`);
    else if (dir === undefined) dir = arg;
    else throw new Error(`only one folder may be given (got ${dir} and ${arg})\n${USAGE}`);
  }
  if (!dir) throw new Error(`no folder given\n${USAGE}`);
  if (!url) throw new Error(`--url (or TEMPLATES_URL) is required\n${USAGE}`);
  try {
    const parsed = new URL(url);
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw new Error('not http');
  } catch {
    throw new Error(`--url must be an http(s) URL, got ${JSON.stringify(url)}`);
  }
  return { dir, url, apiKey, dryRun };
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const outcomes = await applyTemplates(args.dir, {
    url: args.url,
    apiKey: args.apiKey,
    dryRun: args.dryRun,
    onOutcome: (o) => process.stdout.write(`${o.line}\n`),
  });
  const changed = outcomes.filter((o) => o.action !== 'unchanged' && o.action !== 'skipped').length;
  process.stdout.write(`${outcomes.length} file(s), ${changed} ${args.dryRun ? 'would change' : 'changed'}\n`);
}

main().catch((err: unknown) => {
  const message = err instanceof TemplateFileError ? err.message : (err as Error)?.message ?? String(err);
  process.stderr.write(`templates:apply: ${message}\n`);
  process.exit(1);
});
