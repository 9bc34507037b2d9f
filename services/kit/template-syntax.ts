/**
 * The prompt template syntax, shared by the templates service (which stores and renders
 * templates) and the router (which renders from its in-memory cache). Pure: no I/O, no
 * dependencies, nothing in a template can run code.
 *
 * Syntax: `{{name}}` (whitespace inside the braces allowed: `{{ user.name }}`) is replaced by the
 * variable's value as text; there are no sections, conditionals, helpers or partials, and no HTML
 * escaping. `\{{` writes a literal `{{`. Any other `{{` is a syntax error, so a template written
 * for a logic-ful engine (`{{#if}}`, `{{{raw}}}`) is rejected instead of rendered half-way.
 * A dotted name such as `user.name` is one flat key of the variables object.
 */

/** The two template types: `text` renders to one user message, `chat` to a list of messages. */
export const TEMPLATE_TYPES = ['text', 'chat'] as const;
export type TemplateType = (typeof TEMPLATE_TYPES)[number];

/**
 * Template names: lower case letters, digits, `.`, `_`, `-`; at most 128 characters. Shared by
 * the templates service and the router's `prompt.name`.
 */
export const TEMPLATE_NAME_PATTERN = '^[a-z0-9][a-z0-9._-]{0,127}$';
/** Label names: like template names, at most 64 characters (`prompt.label` in the router). */
export const TEMPLATE_LABEL_PATTERN = '^[a-z0-9][a-z0-9._-]{0,63}$';

/** The roles a chat template's messages may have. */
export const CHAT_ROLES = ['system', 'developer', 'user', 'assistant'] as const;
export type ChatRole = (typeof CHAT_ROLES)[number];

/** One OpenAI-style message, as a chat template holds it and as rendering returns it. */
export interface TemplateMessage {
  role: ChatRole;
  content: string;
}

/** What a template holds: a string (`text`) or a list of messages (`chat`). */
export type TemplateSource = string | TemplateMessage[];

/** A variable's value: strings, numbers and booleans (numbers and booleans are stringified). */
export type VariableValue = string | number | boolean;

/** The variables a render is given, by name. */
export type Variables = Record<string, VariableValue>;

/** A variable name: identifiers joined by dots, at most 128 characters. */
export const VARIABLE_NAME_PATTERN = /^[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*$/;
/** Longest variable name. */
export const MAX_VARIABLE_NAME_LENGTH = 128;
/**
 * Variable names a template may not use: variables arrive as the keys of a JSON object, and
 * these cannot be such a key (the kit refuses `__proto__` in every request body), so a template
 * using one could be stored but never rendered.
 */
export const RESERVED_VARIABLE_NAMES: readonly string[] = ['__proto__'];
/** Largest rendered output (sum of message contents, in characters) by default. */
export const DEFAULT_MAX_RENDERED_CHARS = 1_048_576;

/**
 * Any problem with a template or a render. `param` is the field at fault as the templates API
 * names it (`template[1].content`, `variables`, `variables.user`), so a service can turn it into
 * a 400 naming the field.
 */
export class TemplateError extends Error {
  constructor(
    message: string,
    /** The field at fault. */
    readonly param: string,
  ) {
    super(message);
    this.name = 'TemplateError';
  }
}

/** The template text itself is invalid (bad placeholder, unclosed braces, wrong shape). */
export class TemplateSyntaxError extends TemplateError {
  override name = 'TemplateSyntaxError';
}

/** A render lacked variables the template needs; `missing` lists every one of them. */
export class MissingVariablesError extends TemplateError {
  override name = 'MissingVariablesError';
  constructor(readonly missing: string[]) {
    super(`missing variables: ${missing.join(', ')}`, 'variables');
  }
}

/** A variable's value is not a string, number or boolean (or is not finite). */
export class InvalidVariableError extends TemplateError {
  override name = 'InvalidVariableError';
}

/** A compiled piece of one string: literal text or a variable reference. */
type Part = string | { name: string };

/** A template parsed once and ready to render many times (what a cache should hold). */
export interface CompiledTemplate {
  type: TemplateType;
  /** Every variable the template uses, sorted, without duplicates. */
  variables: string[];
  /** One entry per output message. */
  messages: Array<{ role: ChatRole; parts: Part[] }>;
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  return typeof value;
}

function position(text: string, index: number): string {
  let line = 1;
  let col = 1;
  for (let i = 0; i < index; i++) {
    if (text.charCodeAt(i) === 10) {
      line++;
      col = 1;
    } else col++;
  }
  return `line ${line}, column ${col}`;
}

/** Splits one string into literal text and variable references. */
function compileString(text: string, param: string, names: Set<string>): Part[] {
  const parts: Part[] = [];
  let literal = '';
  let i = 0;
  for (;;) {
    const open = text.indexOf('{{', i);
    if (open === -1) {
      literal += text.slice(i);
      break;
    }
    if (open > 0 && text.charCodeAt(open - 1) === 92 /* \ */) {
      literal += text.slice(i, open - 1) + '{{';
      i = open + 2;
      continue;
    }
    literal += text.slice(i, open);
    const close = text.indexOf('}}', open + 2);
    if (close === -1) {
      throw new TemplateSyntaxError(`'${param}' has an unclosed '{{' at ${position(text, open)}`, param);
    }
    const name = text.slice(open + 2, close).trim();
    if (!VARIABLE_NAME_PATTERN.test(name) || name.length > MAX_VARIABLE_NAME_LENGTH) {
      const shown = text.slice(open, Math.min(close + 2, open + 40));
      throw new TemplateSyntaxError(
        `'${param}' has an invalid placeholder ${JSON.stringify(shown)} at ${position(text, open)}: ` +
          `templates are logic-less, only {{variable}} placeholders are allowed (names like user_name or user.name; write \\{{ for a literal '{{')`,
        param,
      );
    }
    if (RESERVED_VARIABLE_NAMES.includes(name)) {
      throw new TemplateSyntaxError(
        `'${param}' uses the placeholder {{${name}}} at ${position(text, open)}: '${name}' is a reserved name (variables are passed as JSON object keys, and it cannot be one); choose another name`,
        param,
      );
    }
    if (literal) parts.push(literal);
    literal = '';
    parts.push({ name });
    names.add(name);
    i = close + 2;
  }
  if (literal) parts.push(literal);
  return parts;
}

/**
 * Checks a template's shape and syntax and compiles it: `text` needs a string, `chat` a
 * non-empty list of `{ role, content }` messages. Throws a {@link TemplateSyntaxError} naming
 * the field (`template`, `template[2].role`, ...).
 */
export function compileTemplate(type: TemplateType, template: unknown): CompiledTemplate {
  const names = new Set<string>();
  let messages: CompiledTemplate['messages'];
  if (type === 'text') {
    if (typeof template !== 'string') {
      throw new TemplateSyntaxError(`'template' must be a string for type "text", got ${describe(template)}`, 'template');
    }
    messages = [{ role: 'user', parts: compileString(template, 'template', names) }];
  } else if (type === 'chat') {
    if (!Array.isArray(template)) {
      throw new TemplateSyntaxError(`'template' must be a list of {role, content} messages for type "chat", got ${describe(template)}`, 'template');
    }
    if (template.length === 0) throw new TemplateSyntaxError(`'template' must hold at least one message`, 'template');
    messages = template.map((m: unknown, index) => {
      const at = `template[${index}]`;
      if (typeof m !== 'object' || m === null || Array.isArray(m)) {
        throw new TemplateSyntaxError(`'${at}' must be an object {role, content}, got ${describe(m)}`, at);
      }
      const msg = m as Record<string, unknown>;
      for (const key of Object.keys(msg)) {
        if (key !== 'role' && key !== 'content') throw new TemplateSyntaxError(`'${at}.${key}' is not a known field`, `${at}.${key}`);
      }
      if (!(CHAT_ROLES as readonly unknown[]).includes(msg.role)) {
        throw new TemplateSyntaxError(`'${at}.role' must be one of ${CHAT_ROLES.join(', ')}, got ${JSON.stringify(msg.role ?? null)}`, `${at}.role`);
      }
      if (typeof msg.content !== 'string') {
        throw new TemplateSyntaxError(`'${at}.content' must be a string, got ${describe(msg.content)}`, `${at}.content`);
      }
      return { role: msg.role as ChatRole, parts: compileString(msg.content, `${at}.content`, names) };
    });
  } else {
    throw new TemplateSyntaxError(`'type' must be one of ${TEMPLATE_TYPES.join(', ')}, got ${JSON.stringify(type)}`, 'type');
  }
  return { type, variables: [...names].sort(), messages };
}

/**
 * Derives the variables a template needs (sorted, unique), checking its syntax on the way.
 * This is what the templates service stores with each version.
 */
export function parseTemplate(type: TemplateType, template: unknown): { variables: string[] } {
  return { variables: compileTemplate(type, template).variables };
}

/**
 * Checks a variables object: every value a string, a finite number or a boolean. Throws an
 * {@link InvalidVariableError} naming `variables.<name>`.
 */
export function checkVariables(variables: unknown): asserts variables is Variables {
  if (typeof variables !== 'object' || variables === null || Array.isArray(variables)) {
    throw new InvalidVariableError(`'variables' must be an object of name: value, got ${describe(variables)}`, 'variables');
  }
  for (const [name, value] of Object.entries(variables)) {
    const t = typeof value;
    if (t === 'string' || t === 'boolean') continue;
    if (t === 'number' && Number.isFinite(value)) continue;
    throw new InvalidVariableError(
      `'variables.${name}' must be a string, number or boolean, got ${t === 'number' ? String(value) : describe(value)}`,
      `variables.${name}`,
    );
  }
}

/**
 * Renders a compiled template to OpenAI-style messages. Every missing variable is reported at
 * once ({@link MissingVariablesError}); values are inserted as text, never interpreted.
 */
export function renderCompiled(
  compiled: CompiledTemplate,
  variables: Variables = {},
  options: { maxChars?: number } = {},
): TemplateMessage[] {
  checkVariables(variables);
  const missing = compiled.variables.filter((name) => !Object.prototype.hasOwnProperty.call(variables, name));
  if (missing.length > 0) throw new MissingVariablesError(missing);
  const maxChars = options.maxChars ?? DEFAULT_MAX_RENDERED_CHARS;
  let total = 0;
  return compiled.messages.map(({ role, parts }) => {
    let content = '';
    for (const part of parts) {
      const piece = typeof part === 'string' ? part : String(variables[part.name]);
      total += piece.length;
      if (total > maxChars) {
        throw new InvalidVariableError(`the rendered prompt would be longer than ${maxChars} characters; shorten 'variables'`, 'variables');
      }
      content += piece;
    }
    return { role, content };
  });
}

/**
 * Renders a template (`text` -> one user message, `chat` -> its messages with their roles).
 * Throws a {@link TemplateError} subclass naming the field for any problem.
 */
export function renderTemplate(type: TemplateType, template: TemplateSource, variables: Variables = {}, options: { maxChars?: number } = {}): TemplateMessage[] {
  return renderCompiled(compileTemplate(type, template), variables, options);
}

/** One arm of a release split: a version and its share of traffic in percent. */
export interface SplitEntry {
  version: number;
  weight: number;
}

/** Hashes a key to 0..2^32-1 (FNV-1a over UTF-16 code units, then a murmur3 finaliser). */
export function stickyHash(key: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) {
    h ^= key.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/**
 * Picks a version from a label's split. With a `stickyKey` (e.g. a session id) the pick is a
 * deterministic function of the key: the key hashes to a bucket 0..99 and the buckets are
 * handed out in the split's order by weight, so a session keeps its version as long as the
 * split is unchanged. Without a key the pick is random by weight.
 */
export function pickVersion(split: readonly SplitEntry[], stickyKey?: string): number {
  if (split.length === 0) throw new Error('pickVersion: the split is empty');
  if (split.length === 1) return split[0]!.version;
  const total = split.reduce((sum, e) => sum + Math.max(0, e.weight), 0);
  if (total <= 0) throw new Error('pickVersion: the split has no positive weight');
  const bucket = stickyKey === undefined ? Math.random() * total : ((stickyHash(stickyKey) % 100) * total) / 100;
  let acc = 0;
  for (const entry of split) {
    acc += Math.max(0, entry.weight);
    if (bucket < acc) return entry.version;
  }
  // Only reachable through floating point at the upper edge: the last arm with weight wins.
  return [...split].reverse().find((e) => e.weight > 0)!.version;
}
