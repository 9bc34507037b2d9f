/**
 * The templates service's limits and the checks behind them. The body schemas are the routes'
 * and the core's alike (the kit's `compileBodyCheck`): wrong types and unknown fields are
 * refused the same way for HTTP and in-process callers; what a schema cannot say (sizes, syntax,
 * splits) is checked here after it. Each violation is a 400 naming the field.
 */
import { badRequest } from '../kit/errors';
import { compileBodyCheck } from '../kit/validation';
import { invalidTextReason } from '../kit/json-input';
import {
  TEMPLATE_LABEL_PATTERN,
  TEMPLATE_NAME_PATTERN,
  TEMPLATE_TYPES,
  TemplateError,
  checkVariables,
  compileTemplate,
  type CompiledTemplate,
  type SplitEntry,
  type Variables,
} from '../kit/template-syntax';
import type { CreateInput, LabelTarget, VersionInput } from './types';

/** Names the API uses for its own paths under `/v1/templates/`. */
export const RESERVED_NAMES = ['changes', 'export'] as const;

/** The limits the service enforces (each a 400 naming the field). */
export const LIMITS = {
  /** Characters of template text (a text template, or the sum of a chat template's contents). */
  templateChars: 65_536,
  /** Messages in a chat template. */
  chatMessages: 256,
  /** Variables a template may use, and a render may pass. */
  variables: 256,
  /** Characters of a render's variables (names and values). */
  variablesChars: 262_144,
  /** Characters of a rendered prompt. */
  renderedChars: 1_048_576,
  descriptionChars: 2_048,
  modelChars: 256,
  /** Labels named in one create or new-version request. */
  labelsPerRequest: 16,
  /** Versions one label may split across. */
  splitArms: 4,
  /** Page size of listings. */
  pageSize: 200,
} as const;

/** The largest version number (PostgreSQL's integer). */
const MAX_VERSION = 2_147_483_647;
const labelString = { type: 'string', pattern: TEMPLATE_LABEL_PATTERN } as const;
const versionNumber = { type: 'integer', minimum: 1, maximum: MAX_VERSION } as const;

const versionProperties = {
  type: { type: 'string', enum: [...TEMPLATE_TYPES] },
  template: { type: ['string', 'array'], maxItems: LIMITS.chatMessages },
  description: { type: ['string', 'null'], maxLength: LIMITS.descriptionChars },
  model: { type: ['string', 'null'], maxLength: LIMITS.modelChars },
  labels: { type: 'array', items: labelString, maxItems: LIMITS.labelsPerRequest },
} as const;

/** The body of `POST /v1/templates`. */
export const CREATE_BODY_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  required: ['name', 'type', 'template'],
  properties: { name: { type: 'string' }, ...versionProperties },
} as const;

/** The body of `POST /v1/templates/{name}/versions`. */
export const VERSION_BODY_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  required: ['type', 'template'],
  properties: versionProperties,
} as const;

/** The body of `PUT /v1/templates/{name}/labels/{label}`: one version, or a split. */
export const LABEL_BODY_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  properties: {
    version: versionNumber,
    versions: {
      type: 'array',
      minItems: 1,
      maxItems: LIMITS.splitArms,
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['version', 'weight'],
        properties: { version: versionNumber, weight: { type: 'integer', minimum: 0, maximum: 100 } },
      },
    },
  },
} as const;

const checkCreateShape = compileBodyCheck<CreateInput>(CREATE_BODY_SCHEMA);
const checkVersionShape = compileBodyCheck<VersionInput>(VERSION_BODY_SCHEMA);
const checkLabelShape = compileBodyCheck<LabelTarget>(LABEL_BODY_SCHEMA);

const nameRe = new RegExp(TEMPLATE_NAME_PATTERN);
const labelRe = new RegExp(TEMPLATE_LABEL_PATTERN);

/** Turns a template syntax/render error into a 400 naming its field; rethrows anything else. */
export function asBadRequest(err: unknown): never {
  if (err instanceof TemplateError) throw badRequest(err.message, err.param, err.name === 'MissingVariablesError' ? 'missing_variables' : 'invalid_template');
  throw err;
}

/** Checks a template name against {@link TEMPLATE_NAME_PATTERN}; 400 naming `param` otherwise. */
export function checkTemplateName(name: unknown, param = 'name'): string {
  if (typeof name !== 'string' || !nameRe.test(name)) {
    throw badRequest(`'${param}' must match ${TEMPLATE_NAME_PATTERN} (lower case letters, digits, '.', '_', '-'; at most 128 characters)`, param);
  }
  return name;
}

/** Checks the name of a template being created: the pattern, and not a reserved path word. */
export function checkNewName(name: unknown): string {
  checkTemplateName(name);
  if ((RESERVED_NAMES as readonly string[]).includes(name as string)) {
    throw badRequest(`'name' ${JSON.stringify(name)} is reserved by the API; choose another`, 'name');
  }
  return name as string;
}

/** Checks a label name against {@link TEMPLATE_LABEL_PATTERN}; 400 naming `param` otherwise. */
export function checkLabel(label: unknown, param = 'label'): string {
  if (typeof label !== 'string' || !labelRe.test(label)) {
    throw badRequest(`'${param}' must match ${TEMPLATE_LABEL_PATTERN} (lower case letters, digits, '.', '_', '-'; at most 64 characters)`, param);
  }
  return label;
}

/**
 * Text PostgreSQL can store and a provider can be sent: no NUL, no unpaired surrogate. The kit
 * refuses such text in every HTTP body already; this holds for in-process callers and files.
 */
function checkText(value: unknown, param: string): void {
  if (typeof value !== 'string') return;
  const reason = invalidTextReason(value);
  if (reason) throw badRequest(`'${param}' ${reason}`, param, 'invalid_text');
}

function checkedText(value: string | null | undefined, param: string): string | null {
  if (value === undefined || value === null) return null;
  checkText(value, param);
  return value;
}

/** A version input checked and compiled: what the core stores. */
export interface CheckedVersion {
  type: VersionInput['type'];
  template: VersionInput['template'];
  compiled: CompiledTemplate;
  description: string | null;
  model: string | null;
  labels: string[] | undefined;
}

/** Checks a new template: its name, then its first version as {@link checkVersionInput} does. */
export function checkCreateInput(input: CreateInput): CheckedVersion & { name: string } {
  const { name, ...version } = checkCreateShape(input);
  return { name: checkNewName(name), ...checkVersionInput(version) };
}

/** Checks a version's fields, sizes and syntax. */
export function checkVersionInput(input: VersionInput): CheckedVersion {
  const { type, template, labels } = checkVersionShape(input);
  if (typeof template === 'string') checkText(template, 'template');
  else template.forEach((m, i) => checkText((m as { content?: unknown } | null)?.content, `template[${i}].content`));
  let compiled: CompiledTemplate;
  try {
    compiled = compileTemplate(type, template);
  } catch (err) {
    asBadRequest(err);
  }
  const chars = typeof template === 'string' ? template.length : template.reduce((n, m) => n + m.content.length, 0);
  if (chars > LIMITS.templateChars) {
    throw badRequest(`'template' must be at most ${LIMITS.templateChars} characters, got ${chars}`, 'template');
  }
  if (compiled.variables.length > LIMITS.variables) {
    throw badRequest(`'template' may use at most ${LIMITS.variables} variables, got ${compiled.variables.length}`, 'template');
  }
  if (labels !== undefined && new Set(labels).size !== labels.length) throw badRequest(`'labels' must not repeat a label`, 'labels');
  return {
    type,
    template,
    compiled,
    description: checkedText(input.description, 'description'),
    model: checkedText(input.model, 'model'),
    labels,
  };
}

/** Checks a render's variables: shape, value types, count and size. */
export function checkRenderVariables(variables: unknown): Variables {
  if (variables === undefined || variables === null) return {};
  try {
    checkVariables(variables);
  } catch (err) {
    asBadRequest(err);
  }
  const entries = Object.entries(variables as Variables);
  if (entries.length > LIMITS.variables) throw badRequest(`'variables' may hold at most ${LIMITS.variables} entries, got ${entries.length}`, 'variables');
  let chars = 0;
  for (const [k, v] of entries) chars += k.length + String(v).length;
  if (chars > LIMITS.variablesChars) throw badRequest(`'variables' must be at most ${LIMITS.variablesChars} characters in total, got ${chars}`, 'variables');
  return variables as Variables;
}

/** Checks a version number. */
export function checkVersionNumber(version: unknown, param = 'version'): number {
  if (typeof version !== 'number' || !Number.isInteger(version) || version < 1 || version > MAX_VERSION) {
    throw badRequest(`'${param}' must be a whole number of at least 1`, param);
  }
  return version;
}

/** Normalises a label target to a split; weights 0..100 summing to 100, versions distinct. */
export function checkLabelTarget(target: LabelTarget): SplitEntry[] {
  const checked = checkLabelShape(target) as { version?: number; versions?: SplitEntry[] };
  const hasOne = checked.version !== undefined;
  const hasSplit = checked.versions !== undefined;
  if (hasOne === hasSplit) {
    throw badRequest(`give either 'version' (one version) or 'versions' (a split: [{version, weight}]), not ${hasOne ? 'both' : 'neither'}`, hasOne ? 'versions' : 'version');
  }
  if (hasOne) return [{ version: checked.version!, weight: 100 }];
  const split = checked.versions!.map((e) => ({ version: e.version, weight: e.weight }));
  if (new Set(split.map((e) => e.version)).size !== split.length) throw badRequest(`'versions' must not name a version twice`, 'versions');
  const sum = split.reduce((n, e) => n + e.weight, 0);
  if (sum !== 100) throw badRequest(`'versions' weights must sum to 100, got ${sum}`, 'versions');
  return split;
}

/** The `x-promptmesh-actor` header made safe to store: printable, at most 200 characters. */
export function actorFrom(header: unknown): string {
  const raw = Array.isArray(header) ? header[0] : header;
  if (typeof raw !== 'string') return 'anonymous';
  // eslint-disable-next-line no-control-regex
  const clean = raw.replace(/[\u0000-\u001f\u007f]/g, '').trim().slice(0, 200);
  return clean || 'anonymous';
}
