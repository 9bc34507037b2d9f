/**
 * The public shapes of the templates service: what its HTTP API answers with, and what its
 * core (used in-process by the router in `SERVICE=all`) takes and returns. Field names are
 * snake_case because they are the JSON of the API.
 */
import type { SplitEntry, TemplateMessage, TemplateSource, TemplateType, Variables } from '../kit/template-syntax';

export type { SplitEntry, TemplateMessage, TemplateSource, TemplateType, Variables } from '../kit/template-syntax';

/** The label a lookup or render resolves when it names neither a label nor a version. */
export const DEFAULT_LABEL = 'production';

/** What a new version carries (the body of `POST /v1/templates/{name}/versions`). */
export interface VersionInput {
  type: TemplateType;
  template: TemplateSource;
  /** Free text for people. */
  description?: string | null;
  /** The model this prompt was written for (a model alias or provider model). */
  model?: string | null;
  /**
   * Labels to point at the new version, moved in the same transaction. On create this
   * defaults to `["production"]`; on a new version it defaults to none.
   */
  labels?: string[];
}

/** The body of `POST /v1/templates`. */
export interface CreateInput extends VersionInput {
  name: string;
}

/** One immutable version of a template. */
export interface TemplateVersion {
  name: string;
  version: number;
  type: TemplateType;
  template: TemplateSource;
  /** The variables the template uses, derived from it when the version was created. */
  variables: string[];
  description: string | null;
  model: string | null;
  created_at: string;
  created_by: string;
}

/** A version as a lookup resolved it, with the label and split that led there. */
export interface ResolvedTemplate extends TemplateVersion {
  /** The label resolved, or null when a version was asked for. */
  label: string | null;
  /** The label's split (one entry with weight 100 when it is not split), or null for a version lookup. */
  split: SplitEntry[] | null;
}

/** The result of a render. */
export interface RenderResult {
  name: string;
  version: number;
  label: string | null;
  split: SplitEntry[] | null;
  messages: TemplateMessage[];
}

/** A template in a listing. */
export interface TemplateSummary {
  name: string;
  latest_version: number;
  /** The latest version's description. */
  description: string | null;
  /** Every label and its split. */
  labels: Record<string, SplitEntry[]>;
  archived: boolean;
  created_at: string;
  updated_at: string;
}

/** A page of templates. */
export interface TemplateList {
  data: TemplateSummary[];
  has_more: boolean;
  /** Pass as `cursor` for the next page; null on the last page. */
  next_cursor: string | null;
}

/** A template's versions. */
export interface VersionList {
  name: string;
  archived: boolean;
  latest_version: number;
  labels: Record<string, SplitEntry[]>;
  data: TemplateVersion[];
  has_more: boolean;
}

/** Where a label moves: one version, or a release split of up to {@link MAX_SPLIT_ARMS} versions. */
export type LabelTarget = { version: number } | { versions: SplitEntry[] };

/** The result of a label move. */
export interface LabelState {
  name: string;
  label: string;
  versions: SplitEntry[];
  /** The split before the move, or null when the label is new. */
  previous: SplitEntry[] | null;
  /** False when the label already pointed there (nothing recorded, nothing published). */
  changed: boolean;
  updated_at: string;
  updated_by: string;
}

/** One label move, as the history keeps it. */
export interface LabelMove {
  from: SplitEntry[] | null;
  to: SplitEntry[];
  actor: string;
  at: string;
}

/** What kind of change a change-feed entry records. */
export type ChangeKind = 'created' | 'version' | 'label' | 'archived';

/**
 * One change, as published on Redis and listed by the change feed. `seq` grows with every
 * change and is in commit order.
 */
export interface TemplateChange {
  seq: number;
  name: string;
  kind: ChangeKind;
  /** The new version (`created`, `version`). */
  version?: number;
  /** The label moved (`label`). */
  label?: string;
  at: string;
}

/** A page of the change feed. */
export interface ChangeFeed {
  /** The latest sequence number at the time of the read. */
  seq: number;
  changes: TemplateChange[];
  has_more: boolean;
  /**
   * True when `since` is ahead of the latest sequence (the database was restored or
   * replaced): the client should re-export everything.
   */
  reset: boolean;
}

/** One active template in an export: its labels and the versions they point at. */
export interface ExportedTemplate {
  name: string;
  latest_version: number;
  labels: Record<string, SplitEntry[]>;
  versions: TemplateVersion[];
}

/** Everything a cache needs to warm up, consistent as of `seq`. */
export interface TemplatesExport {
  seq: number;
  templates: ExportedTemplate[];
}

/** Options of a lookup or render. */
export interface ResolveOptions {
  label?: string;
  version?: number;
  /** Keeps the pick of a split label stable (e.g. a session id). */
  stickyKey?: string;
}

/** Options of a listing. */
export interface ListOptions {
  /** @default 50 (at most 200) */
  limit?: number;
  cursor?: string;
  offset?: number;
  /** @default false */
  includeArchived?: boolean;
}

/**
 * The templates service's core: everything the HTTP API does, callable in-process. Methods
 * throw `ApiError` (400 naming the field, 404, 409, 503) like the API answers.
 */
export interface TemplatesCore {
  /** Creates a template at version 1, pointing its labels (default `production`) at it. */
  create(input: CreateInput, actor?: string): Promise<TemplateVersion & { labels: string[] }>;
  /** Adds the next version (numbers have no gaps), moving the labels the input names. */
  addVersion(name: string, input: VersionInput, actor?: string): Promise<TemplateVersion & { labels: string[] }>;
  /** Resolves a version by number, or by label (default `production`, splits picked by `stickyKey`). */
  get(name: string, options?: ResolveOptions): Promise<ResolvedTemplate>;
  /** Lists templates by name. */
  list(options?: ListOptions): Promise<TemplateList>;
  /** Lists a template's versions (ascending by default). */
  versions(name: string, options?: { limit?: number; after?: number; order?: 'asc' | 'desc' }): Promise<VersionList>;
  /** Moves a label atomically to one version or a split, recording who/when/from/to. */
  moveLabel(name: string, label: string, target: LabelTarget, actor?: string): Promise<LabelState>;
  /** A label's moves, newest first. */
  labelHistory(name: string, label: string, options?: { limit?: number }): Promise<{ name: string; label: string; data: LabelMove[] }>;
  /** Resolves and renders to OpenAI-style messages. */
  render(name: string, variables: Variables | undefined, options?: ResolveOptions): Promise<RenderResult>;
  /** Archives a template: it stops serving; its versions stay. */
  archive(name: string, actor?: string): Promise<{ name: string; archived: true; archived_at: string }>;
  /** Changes after `since`, oldest first. */
  changesSince(since: number, limit?: number): Promise<ChangeFeed>;
  /** Every active template with its labels and the versions they point at. */
  exportAll(): Promise<TemplatesExport>;
  /** Calls `listener` after each committed change in this process; returns an unsubscribe. */
  onChange(listener: (change: TemplateChange) => void): () => void;
}
