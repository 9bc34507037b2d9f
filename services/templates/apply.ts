/**
 * Prompts as code: applies a folder of template files to a running templates service, over
 * its HTTP API, idempotently. `scripts/templates-apply.ts` is the command line around it.
 *
 * A file holds one template: `name`, `type`, `template`, and optionally `description`, `model`
 * and `label` (default `production`). The file is the desired state of that label:
 * - no such template: it is created, with the label on version 1;
 * - the label already serves the same content: nothing happens;
 * - the latest version has the same content: the label moves to it;
 * - otherwise a new version is added and the label moves to it, in one transaction.
 * A label that is a release split (several versions) is left alone and reported as skipped,
 * so applying a folder never ends a canary by accident.
 */
import { readFile, readdir } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { request } from 'undici';
import { parseAllDocuments } from 'yaml';
import { HEADERS, PATHS } from '../../contracts';
import { ApiError } from '../kit/errors';
import type { TemplateSource, TemplateType } from '../kit/template-syntax';
import { DEFAULT_LABEL, type ResolvedTemplate, type VersionList } from './types';
import { checkLabel, checkNewName, checkVersionInput } from './validation';

/** The fields a template file may hold. */
export const FILE_FIELDS = ['name', 'type', 'template', 'description', 'model', 'label'] as const;

/** A template file, checked. */
export interface TemplateFile {
  file: string;
  name: string;
  type: TemplateType;
  template: TemplateSource;
  description: string | null;
  model: string | null;
  label: string;
}

/** A bad template file: the message names the file and the field. */
export class TemplateFileError extends Error {
  constructor(
    readonly file: string,
    readonly field: string | null,
    message: string,
  ) {
    super(`${file}: ${message}`);
    this.name = 'TemplateFileError';
  }
}

/** What applying one file did (or, in a dry run, would do). */
export interface ApplyOutcome {
  file: string;
  name: string;
  label: string;
  action: 'created' | 'new-version' | 'label-moved' | 'unchanged' | 'skipped';
  version: number | null;
  /** One line for people. */
  line: string;
}

/** Options of {@link applyTemplates}. */
export interface ApplyOptions {
  /** The templates service, e.g. `http://127.0.0.1:8080` (a router URL works too). */
  url: string;
  /** Sent as `Authorization: Bearer <key>` (needed through a router with auth on). */
  apiKey?: string;
  /** Report what would change without changing anything. @default false */
  dryRun?: boolean;
  /** Called with each outcome as it happens. */
  onOutcome?: (outcome: ApplyOutcome) => void;
}

const EXTENSIONS = /\.(ya?ml|json)$/i;

/** Reads and checks one template file. */
export async function readTemplateFile(path: string): Promise<TemplateFile> {
  const file = path;
  const text = await readFile(path, 'utf8');
  let data: unknown;
  if (/\.json$/i.test(path)) {
    try {
      data = JSON.parse(text);
    } catch (err) {
      throw new TemplateFileError(file, null, `is not valid JSON: ${(err as Error).message}`);
    }
  } else {
    const docs = parseAllDocuments(text);
    if (!Array.isArray(docs) || docs.length !== 1) throw new TemplateFileError(file, null, 'must hold exactly one YAML document (one template per file)');
    const doc = docs[0]!;
    if (doc.errors.length > 0) throw new TemplateFileError(file, null, `is not valid YAML: ${doc.errors[0]!.message}`);
    data = doc.toJS();
  }
  if (typeof data !== 'object' || data === null || Array.isArray(data)) {
    throw new TemplateFileError(file, null, `must be an object with ${FILE_FIELDS.join(', ')}`);
  }
  const obj = data as Record<string, unknown>;
  for (const key of Object.keys(obj)) {
    if (!(FILE_FIELDS as readonly string[]).includes(key)) {
      throw new TemplateFileError(file, key, `'${key}' is not a known field (allowed: ${FILE_FIELDS.join(', ')})`);
    }
  }
  for (const field of ['name', 'type', 'template'] as const) {
    if (obj[field] === undefined || obj[field] === null) throw new TemplateFileError(file, field, `'${field}' is required`);
  }
  try {
    const name = checkNewName(obj.name);
    const label = obj.label === undefined ? DEFAULT_LABEL : checkLabel(obj.label);
    const checked = checkVersionInput({
      type: obj.type as TemplateType,
      template: obj.template as TemplateSource,
      description: obj.description as string | undefined,
      model: obj.model as string | undefined,
    });
    return { file, name, type: checked.type, template: checked.template, description: checked.description, model: checked.model, label };
  } catch (err) {
    if (err instanceof ApiError) throw new TemplateFileError(file, err.param, err.message);
    throw err;
  }
}

/** Reads every `*.yaml`, `*.yml` and `*.json` file of a folder (sorted), checking them all first. */
export async function readTemplateDir(dir: string): Promise<TemplateFile[]> {
  let entries: string[];
  try {
    entries = (await readdir(dir)).filter((f) => EXTENSIONS.test(f)).sort();
  } catch (err) {
    throw new TemplateFileError(dir, null, `cannot read the folder: ${(err as Error).message}`);
  }
  const files = await Promise.all(entries.map((f) => readTemplateFile(join(dir, f))));
  const seen = new Map<string, string>();
  for (const f of files) {
    const other = seen.get(f.name);
    if (other) throw new TemplateFileError(f.file, 'name', `'name' ${JSON.stringify(f.name)} is also used by ${other}`);
    seen.set(f.name, f.file);
  }
  return files;
}

function sameContent(file: TemplateFile, version: { type: string; template: unknown; description: string | null; model: string | null }): boolean {
  return (
    file.type === version.type &&
    JSON.stringify(file.template) === JSON.stringify(version.template) &&
    file.description === version.description &&
    file.model === version.model
  );
}

class Client {
  constructor(private readonly options: ApplyOptions) {}

  async call(method: 'GET' | 'POST' | 'PUT', path: string, body?: unknown): Promise<{ status: number; body: any }> {
    const headers: Record<string, string> = { [HEADERS.actor]: 'templates-apply' };
    if (body !== undefined) headers['content-type'] = 'application/json';
    if (this.options.apiKey) headers.authorization = `Bearer ${this.options.apiKey}`;
    const res = await request(new URL(path, this.options.url), { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    const text = await res.body.text();
    let json: any = null;
    try {
      json = text ? JSON.parse(text) : null;
    } catch {
      json = { error: { message: text.slice(0, 200) } };
    }
    return { status: res.statusCode, body: json };
  }

  fail(what: string, res: { status: number; body: any }): never {
    throw new Error(`${what} failed: HTTP ${res.status}: ${res.body?.error?.message ?? 'no message'}`);
  }
}

/** Applies one checked file (see the module comment for the rules). */
async function applyOne(client: Client, f: TemplateFile, dryRun: boolean): Promise<ApplyOutcome> {
  const n = encodeURIComponent(f.name);
  const l = encodeURIComponent(f.label);
  const file = basename(f.file);
  const would = dryRun ? 'would be ' : '';
  const outcome = (action: ApplyOutcome['action'], version: number | null, line: string): ApplyOutcome => ({ file: f.file, name: f.name, label: f.label, action, version, line: `${file}: ${line}` });
  const body = { type: f.type, template: f.template, description: f.description, model: f.model, labels: [f.label] };

  const current = await client.call('GET', `${PATHS.templates}/${n}?label=${l}`);
  if (current.status === 404 && current.body?.error?.code === 'template_not_found') {
    if (dryRun) return outcome('created', 1, `${f.name} ${would}created (version 1, ${f.label})`);
    const created = await client.call('POST', PATHS.templates, { name: f.name, ...body });
    if (created.status !== 201) client.fail(`creating ${f.name}`, created);
    return outcome('created', 1, `${f.name} created (version 1, ${f.label})`);
  }
  if (current.status === 404 && current.body?.error?.code === 'template_archived') {
    throw new TemplateFileError(f.file, 'name', `template ${JSON.stringify(f.name)} is archived; archived names are not reused, rename the template`);
  }
  if (current.status === 200) {
    const resolved = current.body as ResolvedTemplate;
    if (resolved.split && resolved.split.length > 1) {
      const arms = resolved.split.map((e) => `v${e.version} ${e.weight}%`).join(', ');
      return outcome('skipped', null, `${f.name} skipped: label ${f.label} is a release split (${arms}); finish or cancel the split first`);
    }
    if (sameContent(f, resolved)) return outcome('unchanged', resolved.version, `${f.name} unchanged (version ${resolved.version}, ${f.label})`);
  } else if (!(current.status === 404 && current.body?.error?.code === 'label_not_found')) {
    client.fail(`reading ${f.name}`, current);
  }

  const latest = await client.call('GET', `${PATHS.templates}/${n}/versions?order=desc&limit=1`);
  if (latest.status !== 200) client.fail(`reading the versions of ${f.name}`, latest);
  const newest = (latest.body as VersionList).data[0];
  if (newest && sameContent(f, newest)) {
    if (!dryRun) {
      const moved = await client.call('PUT', `${PATHS.templates}/${n}/labels/${l}`, { version: newest.version });
      if (moved.status !== 200) client.fail(`moving ${f.label} of ${f.name}`, moved);
    }
    return outcome('label-moved', newest.version, `${f.name} label ${f.label} ${dryRun ? 'would move' : 'moved'} to version ${newest.version}`);
  }
  if (dryRun) return outcome('new-version', null, `${f.name} would get a new version (${f.label})`);
  const added = await client.call('POST', `${PATHS.templates}/${n}/versions`, body);
  if (added.status !== 201) client.fail(`adding a version to ${f.name}`, added);
  return outcome('new-version', added.body.version, `${f.name} new version ${added.body.version} (${f.label})`);
}

/**
 * Applies every template file of `dir`. All files are checked before anything is sent, so a bad
 * file changes nothing; throws {@link TemplateFileError} for it.
 */
export async function applyTemplates(dir: string, options: ApplyOptions): Promise<ApplyOutcome[]> {
  const files = await readTemplateDir(dir);
  const client = new Client(options);
  const outcomes: ApplyOutcome[] = [];
  for (const f of files) {
    const o = await applyOne(client, f, options.dryRun === true);
    options.onOutcome?.(o);
    outcomes.push(o);
  }
  return outcomes;
}
