import { execFile } from 'node:child_process';
import { cp, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyTemplates, readTemplateFile } from './apply';
import { startTemplates, type RunningTemplates } from '../../test/support/templates-service';

const ROOT = resolve(__dirname, '../..');
const EXAMPLES = join(ROOT, 'examples/prompts');

let svc: RunningTemplates;
let dir: string;

beforeAll(async () => {
  svc = await startTemplates({ label: 'apply' });
  dir = await mkdtemp(join(tmpdir(), 'pm-apply-'));
});

afterAll(async () => {
  await svc?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** Runs the real command line, as `npm run templates:apply -- ...` does. */
function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((done) => {
    execFile(process.execPath, ['--import', 'tsx', join(ROOT, 'scripts/templates-apply.ts'), ...args], { cwd: ROOT, timeout: 60_000 }, (err, stdout, stderr) => {
      done({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

describe('templates:apply', () => {
  it('applies the example folder, then finds nothing to do the second time', async () => {
    const work = join(dir, 'examples');
    await cp(EXAMPLES, work, { recursive: true });

    // The command line is spawned for the two runs the issue names and for failures; the other
    // steps call the same function in-process (each spawn costs a TypeScript start-up).
    const dry = await applyTemplates(work, { url: svc.url, dryRun: true });
    expect(dry.map((o) => o.line)).toContain('summarize.yaml: summarize would be created (version 1, production)');
    expect((await svc.core.list()).data).toHaveLength(0);

    const first = await cli([work, '--url', svc.url]);
    expect(first.code, first.stderr).toBe(0);
    const firstLines = first.stdout.trim().split('\n');
    expect(firstLines).toEqual([
      'summarize.yaml: summarize created (version 1, production)',
      'support-greeting.yaml: support.greeting created (version 1, production)',
      'triage.yaml: ticket-triage created (version 1, staging)',
      '3 file(s), 3 changed',
    ]);
    expect((await svc.core.get('ticket-triage', { label: 'staging' })).variables).toEqual(['body', 'subject']);
    await expect(svc.core.get('ticket-triage')).rejects.toMatchObject({ statusCode: 404 });
    const seqAfterFirst = (await svc.core.changesSince(0)).seq;

    const second = await cli([work, '--url', svc.url]);
    expect(second.code, second.stderr).toBe(0);
    expect(second.stdout.trim().split('\n')).toEqual([
      'summarize.yaml: summarize unchanged (version 1, production)',
      'support-greeting.yaml: support.greeting unchanged (version 1, production)',
      'triage.yaml: ticket-triage unchanged (version 1, staging)',
      '3 file(s), 0 changed',
    ]);
    expect((await svc.core.changesSince(0)).seq).toBe(seqAfterFirst);

    // Edit one file: a new version, and its label moves; the others stay unchanged.
    await writeFile(
      join(work, 'support-greeting.yaml'),
      'name: support.greeting\ntype: text\ndescription: First message of a support conversation\nmodel: chat\ntemplate: "Hi {{ customer.name }}!"\n',
    );
    const third = await applyTemplates(work, { url: svc.url });
    expect(third.map((o) => o.line)).toContain('support-greeting.yaml: support.greeting new version 2 (production)');
    expect(third.filter((o) => o.action !== 'unchanged')).toHaveLength(1);
    const served = await svc.core.render('support.greeting', { 'customer.name': 'Ada' });
    expect(served).toMatchObject({ version: 2, messages: [{ role: 'user', content: 'Hi Ada!' }] });
    expect((await applyTemplates(work, { url: svc.url })).every((o) => o.action === 'unchanged')).toBe(true);

    // A rollback by hand, then apply: the file's content is already a version, so the label moves back.
    await svc.core.moveLabel('support.greeting', 'production', { version: 1 });
    const fourth = await applyTemplates(work, { url: svc.url });
    expect(fourth.find((o) => o.name === 'support.greeting')).toMatchObject({ action: 'label-moved', version: 2 });
    expect((await svc.core.versions('support.greeting')).latest_version).toBe(2);
  });

  it('leaves a release split alone', async () => {
    const work = join(dir, 'split');
    await cp(EXAMPLES, work, { recursive: true });
    await applyTemplates(work, { url: svc.url });
    await svc.core.addVersion('summarize', { type: 'text', template: 'canary {{document}}' });
    const latest = (await svc.core.versions('summarize', { order: 'desc', limit: 1 })).data[0]!.version;
    await svc.core.moveLabel('summarize', 'production', { versions: [{ version: 1, weight: 90 }, { version: latest, weight: 10 }] });
    const outcomes = await applyTemplates(work, { url: svc.url });
    expect(outcomes.find((o) => o.name === 'summarize')).toMatchObject({ action: 'skipped' });
    expect((await svc.core.get('summarize', { stickyKey: 'x' })).split).toHaveLength(2);
  });

  it('rejects a bad file naming the file and the field, applying nothing', async () => {
    const bad = join(dir, 'bad');
    await cp(EXAMPLES, bad, { recursive: true });
    await writeFile(join(bad, 'zz-broken.yaml'), 'name: broken\ntype: html\ntemplate: x\n');
    const before = (await svc.core.changesSince(0)).seq;
    const res = await cli([bad, '--url', svc.url]);
    expect(res.code).toBe(1);
    expect(res.stderr).toContain('zz-broken.yaml');
    expect(res.stderr).toContain("'type'");
    expect((await svc.core.changesSince(0)).seq).toBe(before);

    const cases: Array<[string, string, RegExp]> = [
      ['unknown.yaml', 'name: a\ntype: text\ntemplate: x\ntemplat: y\n', /'templat' is not a known field/],
      ['noname.yaml', 'type: text\ntemplate: x\n', /'name' is required/],
      ['badname.yaml', 'name: Not Valid\ntype: text\ntemplate: x\n', /'name' must match/],
      ['badsyntax.yaml', 'name: a\ntype: text\ntemplate: "{{#if x}}"\n', /'template' has an invalid placeholder/],
      ['badrole.yaml', 'name: a\ntype: chat\ntemplate:\n  - role: wizard\n    content: x\n', /'template\[0\]\.role'/],
      ['badlabel.yaml', 'name: a\ntype: text\ntemplate: x\nlabel: PROD\n', /'label' must match/],
      ['list.yaml', '- a\n- b\n', /must be an object/],
      ['twodocs.yaml', 'name: a\n---\nname: b\n', /exactly one YAML document/],
      ['broken.json', '{"name": ', /not valid JSON/],
    ];
    for (const [file, text, message] of cases) {
      const path = join(dir, file);
      await writeFile(path, text);
      const err = await readTemplateFile(path).then(
        () => null,
        (e: Error) => e,
      );
      expect(err?.message, file).toMatch(message);
      expect(err?.message, file).toContain(file);
    }

    const usage = await cli([bad]);
    expect(usage.code).toBe(1);
    expect(usage.stderr).toContain('--url');
  });
});
