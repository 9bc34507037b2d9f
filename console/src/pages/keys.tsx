/**
 * Keys and teams: every key (file keys read-only) with its limits, budget usage and status;
 * creating a key (the secret shown once), editing, rotating it with a grace period, revoking
 * it; the teams with their budget usage, created or replaced from a form. Usage is the current
 * budget period's spend from the spend API.
 */
import { useEffect, useRef, useState } from 'preact/hooks';
import { ApiError, api, budgetUsage, type Budget, type KeyInfo, type KeyWithSecret, type TeamInfo } from '../api';
import { Confirm } from '../dialog';
import { count, usdMicro, when } from '../format';

type Status = 'active' | 'expired' | 'revoked';

function statusOf(k: KeyInfo, now: number): Status {
  if (k.revoked_at) return 'revoked';
  if (k.expires_at && Date.parse(k.expires_at) <= now) return 'expired';
  return 'active';
}

function limitsText(l: { rpm: number | null; tpm: number | null; max_concurrent: number | null }): string {
  const parts = [l.rpm !== null ? `${count(l.rpm)} rpm` : '', l.tpm !== null ? `${count(l.tpm)} tpm` : '', l.max_concurrent !== null ? `${count(l.max_concurrent)} concurrent` : ''].filter(Boolean);
  return parts.length ? parts.join(', ') : 'none';
}

/** A budget's usage: a bar and the figures in words (the bar alone says nothing to a screen reader). */
export function BudgetBar({ budget, spentUsd, owner }: { budget: Budget | null; spentUsd: number | undefined; owner: string }) {
  if (!budget) return <span class="hint">no budget</span>;
  const spent = spentUsd ?? 0;
  const share = spent / budget.usd;
  const percent = share === 0 ? '0%' : share < 0.0001 ? '<0.01%' : `${(share * 100).toFixed(share < 0.01 ? 2 : 0)}%`;
  const text = `${usdMicro(Math.round(spent * 1e6))} of ${usdMicro(Math.round(budget.usd * 1e6))} this ${budget.period} (${percent}${share >= 1 ? ', over budget: refused until the period ends' : ''})`;
  return (
    <div class="budget">
      <meter min={0} max={budget.usd} low={budget.usd * 0.8} high={budget.usd * 0.95} optimum={0} value={Math.min(spent, budget.usd)} aria-label={`Budget used by ${owner}`} />
      <span class="budget-text">{text}</span>
    </div>
  );
}

/** The secret of a key just created or rotated: shown this once, with a copy button. */
function SecretPanel({ shown, onDone }: { shown: { title: string; secret: string; note: string }; onDone: () => void }) {
  const heading = useRef<HTMLHeadingElement>(null);
  const [copied, setCopied] = useState('');
  useEffect(() => heading.current?.focus(), [shown]);
  async function copy() {
    try {
      await navigator.clipboard.writeText(shown.secret);
      setCopied('Copied to the clipboard.');
    } catch {
      setCopied('The browser refused the clipboard: select the secret and copy it by hand.');
    }
  }
  return (
    <section class="secret" aria-labelledby="secret-title">
      <h2 id="secret-title" ref={heading} tabIndex={-1}>
        {shown.title}
      </h2>
      <p>
        <strong>Copy this secret now: you won't see it again.</strong> promptmesh keeps only its hash; if it is lost, rotate the key.
      </p>
      <div class="toolbar">
        <label for="new-secret">Secret</label>
        <input id="new-secret" class="secret-value" readOnly value={shown.secret} size={52} onFocus={(e) => e.currentTarget.select()} />
        <button type="button" onClick={() => void copy()}>
          Copy
        </button>
        <button type="button" onClick={onDone}>
          I have stored it
        </button>
      </div>
      {shown.note && <p class="hint">{shown.note}</p>}
      <p role="status">{copied}</p>
    </section>
  );
}

/** The key form's fields, as typed (strings, so the API, not the browser, judges them). */
interface Draft {
  name: string;
  invoke: boolean;
  admin: boolean;
  models: string;
  rpm: string;
  tpm: string;
  max_concurrent: string;
  budgetUsd: string;
  budgetPeriod: 'day' | 'month';
  expires: string;
  team: string;
}

const EMPTY: Draft = { name: '', invoke: true, admin: false, models: '', rpm: '', tpm: '', max_concurrent: '', budgetUsd: '', budgetPeriod: 'month', expires: '', team: '' };

/** The fields an API error's `param` can name, as the form shows them. */
const FIELDS = ['name', 'scopes', 'models', 'rpm', 'tpm', 'max_concurrent', 'budget.usd', 'budget.period', 'expires_at', 'team'] as const;
type Field = (typeof FIELDS)[number];

/** The form field an API error names (`scopes[0]` is the scopes, `budget` its amount); undefined: none of them. */
function fieldOf(param: string | null): Field | undefined {
  if (!param) return undefined;
  if (param === 'budget') return 'budget.usd';
  const root = param.replace(/\[\d+\].*$/, '');
  return (FIELDS as readonly string[]).includes(root) ? (root as Field) : undefined;
}

/** A number as typed; what is not a number goes to the API as typed, so its error names the field. */
function numberOr(raw: string): number | string | undefined {
  const t = raw.trim();
  if (t === '') return undefined;
  return /^-?\d+(\.\d+)?$/.test(t) ? Number(t) : t;
}

function bodyOf(d: Draft): Record<string, unknown> {
  const body: Record<string, unknown> = { name: d.name.trim(), scopes: scopesOf(d) };
  const models = modelsOf(d);
  if (models.length) body.models = models;
  for (const f of ['rpm', 'tpm', 'max_concurrent'] as const) {
    const v = numberOr(d[f]);
    if (v !== undefined) body[f] = v;
  }
  const usd = numberOr(d.budgetUsd);
  if (usd !== undefined) body.budget = { usd, period: d.budgetPeriod };
  if (d.expires) body.expires_at = instantOf(d.expires);
  if (d.team.trim()) body.team = d.team.trim();
  return body;
}

const scopesOf = (d: Draft) => [...(d.invoke ? ['invoke'] : []), ...(d.admin ? ['admin'] : [])];
const modelsOf = (d: Draft) =>
  d.models
    .split(/[,\s]+/)
    .map((m) => m.trim())
    .filter(Boolean);
/** datetime-local is the user's local time; the API takes an instant. */
const instantOf = (local: string) => {
  const at = new Date(local);
  return Number.isNaN(at.getTime()) ? local : at.toISOString();
};

/** An instant as a datetime-local value (the user's local time, to the minute). */
function localInput(iso: string | null): string {
  if (!iso) return '';
  const d = new Date(iso);
  const p = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
}

function draftOf(k: KeyInfo): Draft {
  const n = (v: number | null) => (v === null ? '' : String(v));
  return {
    name: k.name,
    invoke: k.scopes.includes('invoke'),
    admin: k.scopes.includes('admin'),
    models: (k.models ?? []).join(', '),
    rpm: n(k.rpm),
    tpm: n(k.tpm),
    max_concurrent: n(k.max_concurrent),
    budgetUsd: k.budget ? String(k.budget.usd) : '',
    budgetPeriod: k.budget?.period ?? 'month',
    expires: localInput(k.expires_at),
    team: k.team ?? '',
  };
}

/** A PATCH body: only what changed; a field emptied is null, which clears it. */
function patchOf(was: Draft, d: Draft): Record<string, unknown> {
  const body: Record<string, unknown> = {};
  if (d.name !== was.name) body.name = d.name.trim();
  if (d.invoke !== was.invoke || d.admin !== was.admin) body.scopes = scopesOf(d);
  if (d.models !== was.models) body.models = modelsOf(d).length ? modelsOf(d) : null;
  for (const f of ['rpm', 'tpm', 'max_concurrent'] as const) {
    if (d[f] !== was[f]) body[f] = numberOr(d[f]) ?? null;
  }
  if (d.budgetUsd !== was.budgetUsd || d.budgetPeriod !== was.budgetPeriod) {
    const usd = numberOr(d.budgetUsd);
    body.budget = usd === undefined ? null : { usd, period: d.budgetPeriod };
  }
  if (d.expires !== was.expires) body.expires_at = d.expires ? instantOf(d.expires) : null;
  if (d.team !== was.team) body.team = d.team.trim() || null;
  return body;
}

/**
 * The key form: every field of `POST /v1/keys`. Creating sends what is filled in; editing
 * (`editing` set) sends only what changed as a PATCH. The API's 400 is shown beside the field
 * its `param` names.
 */
function KeyForm({ teams, models, editing, onSaved, onCancel }: { teams: TeamInfo[]; models: string[]; editing?: KeyInfo; onSaved: (saved: KeyInfo | KeyWithSecret) => void; onCancel?: () => void }) {
  const start = editing ? draftOf(editing) : EMPTY;
  const [draft, setDraft] = useState<Draft>(start);
  const [errors, setErrors] = useState<Partial<Record<Field, string>>>({});
  const [formError, setFormError] = useState('');
  const [busy, setBusy] = useState(false);
  const set = <K extends keyof Draft>(k: K, v: Draft[K]) => setDraft((d) => ({ ...d, [k]: v }));
  // Two forms may be on the page at once (create, and edit in its dialog): ids stay apart.
  const ns = editing ? 'edit' : 'key';
  const title = editing ? `Edit key ${editing.name}` : 'Create a key';

  async function submit(e: Event) {
    e.preventDefault();
    setErrors({});
    setFormError('');
    let request: Promise<KeyInfo | KeyWithSecret>;
    if (editing) {
      const body = patchOf(start, draft);
      if (Object.keys(body).length === 0) {
        setFormError('Nothing changed.');
        return;
      }
      request = api<KeyInfo>('PATCH', `/v1/keys/${encodeURIComponent(editing.id)}`, body);
    } else {
      request = api<KeyWithSecret>('POST', '/v1/keys', bodyOf(draft));
    }
    setBusy(true);
    try {
      const saved = await request;
      if (!editing) setDraft(EMPTY);
      onSaved(saved);
    } catch (err) {
      const field = err instanceof ApiError ? fieldOf(err.param) : undefined;
      if (field) setErrors({ [field]: (err as ApiError).message });
      else setFormError((err as Error).message);
    } finally {
      setBusy(false);
    }
  }

  const errorId = (f: Field) => `${ns}-error-${f.replace('.', '-')}`;
  /** Props that tie an input to its error message. */
  const invalid = (f: Field) => (errors[f] ? { 'aria-invalid': true as const, 'aria-describedby': errorId(f) } : {});
  const note = (f: Field) =>
    errors[f] ? (
      <p class="error field-error" id={errorId(f)}>
        {errors[f]}
      </p>
    ) : null;

  return (
    <form class={editing ? 'key-form' : 'key-form create-key'} onSubmit={submit} aria-labelledby={`${ns}-form-title`} noValidate>
      <h2 id={`${ns}-form-title`}>{title}</h2>
      <div class="field">
        <label for={`${ns}-name`}>Name (required)</label>
        <input id={`${ns}-name`} aria-required="true" value={draft.name} onInput={(e) => set('name', e.currentTarget.value)} {...invalid('name')} />
        {note('name')}
      </div>
      <fieldset {...invalid('scopes')}>
        <legend>Scopes</legend>
        <label class="check">
          <input type="checkbox" checked={draft.invoke} onChange={(e) => set('invoke', e.currentTarget.checked)} /> invoke (completions, embeddings)
        </label>{' '}
        <label class="check">
          <input type="checkbox" checked={draft.admin} onChange={(e) => set('admin', e.currentTarget.checked)} /> admin (templates, keys, the console)
        </label>
        {note('scopes')}
      </fieldset>
      <div class="field">
        <label for={`${ns}-models`}>Allowed models</label>
        <input id={`${ns}-models`} aria-describedby={`${ns}-models-hint`} value={draft.models} onInput={(e) => set('models', e.currentTarget.value)} {...invalid('models')} />
        <p class="hint" id={`${ns}-models-hint`}>
          Comma-separated; empty allows every model.{models.length > 0 && ` Known: ${models.join(', ')}.`}
        </p>
        {note('models')}
      </div>
      <div class="grid3">
        {(
          [
            ['rpm', 'Requests per minute'],
            ['tpm', 'Tokens per minute'],
            ['max_concurrent', 'Concurrent requests'],
          ] as const
        ).map(([f, label]) => (
          <div class="field" key={f}>
            <label for={`${ns}-${f}`}>{label}</label>
            <input id={`${ns}-${f}`} inputMode="numeric" value={draft[f]} onInput={(e) => set(f, e.currentTarget.value)} {...invalid(f)} />
            {note(f)}
          </div>
        ))}
      </div>
      <div class="grid3">
        <div class="field">
          <label for={`${ns}-budget`}>Budget in USD</label>
          <input id={`${ns}-budget`} inputMode="decimal" value={draft.budgetUsd} onInput={(e) => set('budgetUsd', e.currentTarget.value)} {...invalid('budget.usd')} />
          {note('budget.usd')}
        </div>
        <div class="field">
          <label for={`${ns}-budget-period`}>Budget period</label>
          <select id={`${ns}-budget-period`} value={draft.budgetPeriod} onChange={(e) => set('budgetPeriod', e.currentTarget.value as 'day' | 'month')} {...invalid('budget.period')}>
            <option value="day">per day (UTC)</option>
            <option value="month">per month (UTC)</option>
          </select>
          {note('budget.period')}
        </div>
        <div class="field">
          <label for={`${ns}-team`}>Team</label>
          <input id={`${ns}-team`} list={`${ns}-team-ids`} value={draft.team} onInput={(e) => set('team', e.currentTarget.value)} {...invalid('team')} />
          <datalist id={`${ns}-team-ids`}>
            {teams.map((t) => (
              <option key={t.id} value={t.id}>
                {t.name}
              </option>
            ))}
          </datalist>
          {note('team')}
        </div>
      </div>
      <div class="field">
        <label for={`${ns}-expires`}>Expires at (your local time; empty: never)</label>
        <input id={`${ns}-expires`} type="datetime-local" value={draft.expires} onInput={(e) => set('expires', e.currentTarget.value)} {...invalid('expires_at')} />
        {note('expires_at')}
      </div>
      <div class="toolbar">
        <button type="submit" disabled={busy}>
          {editing ? 'Save changes' : 'Create key'}
        </button>
        {onCancel && (
          <button type="button" onClick={onCancel}>
            Cancel
          </button>
        )}
      </div>
      {formError && (
        <p class="error" role="alert">
          {formError}
        </p>
      )}
      {Object.keys(errors).length > 0 && (
        <p class="error" role="alert">
          The API refused the {editing ? 'change' : 'key'}: see the field marked above.
        </p>
      )}
    </form>
  );
}

/** The key form in a modal dialog, for editing one key (Escape cancels). */
function EditKey({ keyInfo, teams, models, onDone }: { keyInfo: KeyInfo; teams: TeamInfo[]; models: string[]; onDone: (saved: KeyInfo | undefined) => void }) {
  const ref = useRef<HTMLDialogElement>(null);
  useEffect(() => {
    ref.current?.showModal();
  }, []);
  return (
    <dialog ref={ref} class="wide-dialog" aria-labelledby="edit-form-title" onCancel={() => onDone(undefined)}>
      <KeyForm teams={teams} models={models} editing={keyInfo} onSaved={(saved) => onDone(saved)} onCancel={() => onDone(undefined)} />
    </dialog>
  );
}

/** The team form's fields, as typed. */
interface TeamDraft {
  id: string;
  name: string;
  budgetUsd: string;
  budgetPeriod: 'day' | 'month';
  rpm: string;
  tpm: string;
  max_concurrent: string;
}

const EMPTY_TEAM: TeamDraft = { id: '', name: '', budgetUsd: '', budgetPeriod: 'month', rpm: '', tpm: '', max_concurrent: '' };
const TEAM_FIELDS = ['id', 'name', 'budget.usd', 'budget.period', 'rpm', 'tpm', 'max_concurrent'] as const;
type TeamField = (typeof TEAM_FIELDS)[number];

function teamDraftOf(t: TeamInfo): TeamDraft {
  const n = (v: number | null) => (v === null ? '' : String(v));
  return { id: t.id, name: t.name, budgetUsd: t.budget ? String(t.budget.usd) : '', budgetPeriod: t.budget?.period ?? 'month', rpm: n(t.rpm), tpm: n(t.tpm), max_concurrent: n(t.max_concurrent) };
}

/**
 * Creates or replaces a team (`PUT /v1/teams/{id}`: what is left empty is cleared). "Edit…" on a
 * team's row fills it in; the API's 400 is shown beside the field its `param` names.
 */
function TeamForm({ start, teams, onSaved }: { start: TeamDraft; teams: TeamInfo[]; onSaved: (team: TeamInfo, created: boolean) => void }) {
  const [draft, setDraft] = useState<TeamDraft>(start);
  const [errors, setErrors] = useState<Partial<Record<TeamField, string>>>({});
  const [formError, setFormError] = useState('');
  const [busy, setBusy] = useState(false);
  useEffect(() => setDraft(start), [start]);
  const set = <K extends keyof TeamDraft>(k: K, v: TeamDraft[K]) => setDraft((d) => ({ ...d, [k]: v }));

  async function submit(e: Event) {
    e.preventDefault();
    setErrors({});
    setFormError('');
    const body: Record<string, unknown> = { name: draft.name.trim() };
    for (const f of ['rpm', 'tpm', 'max_concurrent'] as const) {
      const v = numberOr(draft[f]);
      if (v !== undefined) body[f] = v;
    }
    const usd = numberOr(draft.budgetUsd);
    if (usd !== undefined) body.budget = { usd, period: draft.budgetPeriod };
    setBusy(true);
    try {
      const existed = teams.some((t) => t.id === draft.id.trim());
      const team = await api<TeamInfo>('PUT', `/v1/teams/${encodeURIComponent(draft.id.trim())}`, body);
      setDraft(EMPTY_TEAM);
      onSaved(team, !existed);
    } catch (err) {
      const param = err instanceof ApiError ? (err.param === 'budget' ? 'budget.usd' : err.param) : null;
      if (param && (TEAM_FIELDS as readonly string[]).includes(param)) setErrors({ [param]: (err as ApiError).message });
      else setFormError((err as Error).message);
    } finally {
      setBusy(false);
    }
  }

  const errorId = (f: TeamField) => `team-error-${f.replace('.', '-')}`;
  const invalid = (f: TeamField) => (errors[f] ? { 'aria-invalid': true as const, 'aria-describedby': errorId(f) } : {});
  const note = (f: TeamField) =>
    errors[f] ? (
      <p class="error field-error" id={errorId(f)}>
        {errors[f]}
      </p>
    ) : null;
  const input = (f: 'rpm' | 'tpm' | 'max_concurrent' | 'budgetUsd', field: TeamField, label: string, mode: 'numeric' | 'decimal') => (
    <div class="field">
      <label for={`team-${f}`}>{label}</label>
      <input id={`team-${f}`} inputMode={mode} value={draft[f]} onInput={(e) => set(f, e.currentTarget.value)} {...invalid(field)} />
      {note(field)}
    </div>
  );

  return (
    <form class="team-form" onSubmit={submit} aria-labelledby="team-form-title" noValidate>
      <h3 id="team-form-title">Create or replace a team</h3>
      <div class="grid3">
        <div class="field">
          <label for="team-id">Team id (lower case)</label>
          <input id="team-id" aria-required="true" value={draft.id} onInput={(e) => set('id', e.currentTarget.value)} {...invalid('id')} />
          {note('id')}
        </div>
        <div class="field">
          <label for="team-name">Team name</label>
          <input id="team-name" aria-required="true" value={draft.name} onInput={(e) => set('name', e.currentTarget.value)} {...invalid('name')} />
          {note('name')}
        </div>
      </div>
      <div class="grid3">
        {input('budgetUsd', 'budget.usd', 'Team budget in USD', 'decimal')}
        <div class="field">
          <label for="team-budget-period">Team budget period</label>
          <select id="team-budget-period" value={draft.budgetPeriod} onChange={(e) => set('budgetPeriod', e.currentTarget.value as 'day' | 'month')} {...invalid('budget.period')}>
            <option value="day">per day (UTC)</option>
            <option value="month">per month (UTC)</option>
          </select>
          {note('budget.period')}
        </div>
      </div>
      <div class="grid3">
        {input('rpm', 'rpm', 'Team requests per minute', 'numeric')}
        {input('tpm', 'tpm', 'Team tokens per minute', 'numeric')}
        {input('max_concurrent', 'max_concurrent', 'Team concurrent requests', 'numeric')}
      </div>
      <p class="hint">An existing id is replaced as a whole: what is left empty is cleared.</p>
      <button type="submit" disabled={busy}>
        Save team
      </button>
      {formError && (
        <p class="error" role="alert">
          {formError}
        </p>
      )}
    </form>
  );
}

type Pending = { kind: 'rotate' | 'revoke' | 'edit'; key: KeyInfo };

export function KeysPage() {
  const [keys, setKeys] = useState<KeyInfo[] | undefined>();
  const [teams, setTeams] = useState<TeamInfo[]>([]);
  const [models, setModels] = useState<string[]>([]);
  const [keyUsage, setKeyUsage] = useState(new Map<string, number>());
  const [teamUsage, setTeamUsage] = useState(new Map<string, number>());
  const [showRevoked, setShowRevoked] = useState(false);
  const [error, setError] = useState('');
  const [usageError, setUsageError] = useState('');
  const [done, setDone] = useState('');
  const [secret, setSecret] = useState<{ title: string; secret: string; note: string } | undefined>();
  const [pending, setPending] = useState<Pending | undefined>();
  const [grace, setGrace] = useState('86400');
  const [teamStart, setTeamStart] = useState<TeamDraft>(EMPTY_TEAM);
  const teamForm = useRef<HTMLDivElement>(null);

  async function load() {
    try {
      const [k, t] = await Promise.all([api<{ data: KeyInfo[] }>('GET', `/v1/keys?include_revoked=${showRevoked}`), api<{ data: TeamInfo[] }>('GET', '/v1/teams')]);
      setKeys(k.data);
      setTeams(t.data);
      setError('');
      // The keys are worth showing without their usage (the ledger's database may be away).
      try {
        const [ku, tu] = await Promise.all([budgetUsage('key', k.data), budgetUsage('team', t.data)]);
        setKeyUsage(ku);
        setTeamUsage(tu);
        setUsageError('');
      } catch (err) {
        setUsageError(`Budget usage is unavailable: ${(err as Error).message}`);
      }
    } catch (err) {
      setError((err as Error).message);
    }
  }
  useEffect(() => {
    void load();
  }, [showRevoked]);
  useEffect(() => {
    api<{ data: Array<{ id: string }> }>('GET', '/v1/models').then(
      (m) => setModels(m.data.map((x) => x.id)),
      () => undefined,
    );
  }, []);

  async function answer(yes: boolean) {
    const p = pending!;
    setPending(undefined);
    if (!yes) return;
    setDone('');
    setError('');
    try {
      if (p.kind === 'revoke') {
        await api('DELETE', `/v1/keys/${encodeURIComponent(p.key.id)}`);
        setDone(`Key ${p.key.name} (${p.key.id}) is revoked.`);
      } else {
        const rotated = await api<KeyWithSecret>('POST', `/v1/keys/${encodeURIComponent(p.key.id)}/rotate`, { grace_seconds: Number(grace) });
        setSecret({
          title: `New secret of ${rotated.name}`,
          secret: rotated.key,
          note: rotated.previous_key_valid_until ? `The old secret keeps working until ${when(rotated.previous_key_valid_until)}.` : 'The old secret stopped working at once.',
        });
      }
    } catch (err) {
      setError((err as Error).message);
    }
    await load();
  }

  const now = Date.now();
  const keysOfTeam = (id: string) => (keys ?? []).filter((k) => k.team === id && !k.revoked_at).length;
  return (
    <section aria-labelledby="keys-title">
      <h1 id="keys-title">Keys</h1>
      {secret && <SecretPanel shown={secret} onDone={() => setSecret(undefined)} />}
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
      {usageError && (
        <p class="error" role="alert">
          {usageError}
        </p>
      )}
      {done && <p role="status">{done}</p>}
      <div class="toolbar">
        <label class="check">
          <input type="checkbox" checked={showRevoked} onChange={(e) => setShowRevoked(e.currentTarget.checked)} /> Show revoked
        </label>
      </div>
      {keys === undefined && !error && <p aria-busy="true">Loading…</p>}
      {keys && (
        <div class="wide">
          <table class="list keys">
            <caption class="sr-only">API keys</caption>
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">ID / prefix</th>
                <th scope="col">Team</th>
                <th scope="col">Scopes</th>
                <th scope="col">Models</th>
                <th scope="col">Limits</th>
                <th scope="col">Budget</th>
                <th scope="col">Status</th>
                <th scope="col">Source</th>
                <th scope="col">Actions</th>
              </tr>
            </thead>
            <tbody>
              {keys.map((k) => {
                const status = statusOf(k, now);
                return (
                  <tr key={k.id} data-key={k.id}>
                    <td>{k.name}</td>
                    <td>
                      <code>{k.id}</code>
                      {k.prefix && (
                        <>
                          <br />
                          <code>{k.prefix}…</code>
                        </>
                      )}
                    </td>
                    <td>{k.team ?? '–'}</td>
                    <td>
                      {k.scopes.map((s) => (
                        <span class="tag" key={s}>
                          {s}
                        </span>
                      ))}
                    </td>
                    <td>{k.models ? k.models.join(', ') : 'all'}</td>
                    <td>{limitsText(k)}</td>
                    <td>
                      <BudgetBar budget={k.budget} spentUsd={keyUsage.get(k.id)} owner={`key ${k.name}`} />
                    </td>
                    <td>
                      <span class={`state ${status}`}>{status}</span>
                      {status === 'active' && k.expires_at && <span class="hint"> until {when(k.expires_at)}</span>}
                      {status === 'expired' && <span class="hint"> at {when(k.expires_at!)}</span>}
                      {status === 'revoked' && <span class="hint"> at {when(k.revoked_at!)}</span>}
                      {status === 'active' && k.previous_key_valid_until && <span class="hint"> (old secret valid until {when(k.previous_key_valid_until)})</span>}
                    </td>
                    <td>{k.source === 'file' ? 'file (read-only)' : 'api'}</td>
                    <td>
                      {k.source === 'file' ? (
                        <span class="hint">change API_KEYS_FILE</span>
                      ) : status === 'revoked' ? (
                        '–'
                      ) : (
                        <div class="actions">
                          <button type="button" aria-label={`Edit key ${k.name}`} onClick={() => setPending({ kind: 'edit', key: k })}>
                            Edit…
                          </button>
                          <button type="button" aria-label={`Rotate key ${k.name}`} onClick={() => (setGrace('86400'), setPending({ kind: 'rotate', key: k }))}>
                            Rotate…
                          </button>
                          <button type="button" class="danger" aria-label={`Revoke key ${k.name}`} onClick={() => setPending({ kind: 'revoke', key: k })}>
                            Revoke…
                          </button>
                        </div>
                      )}
                    </td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        </div>
      )}
      {pending?.kind === 'revoke' && (
        <Confirm
          question={`Revoke key ${pending.key.name} (${pending.key.id})? Every request with it is refused from now on, on every replica; its spend history stays. This cannot be undone.`}
          confirmLabel="Revoke"
          onAnswer={(yes) => void answer(yes)}
        />
      )}
      {pending?.kind === 'rotate' && (
        <Confirm question={`Rotate key ${pending.key.name} (${pending.key.id})? A new secret is issued and shown once; the old one keeps working for the grace period, then stops.`} confirmLabel="Rotate" onAnswer={(yes) => void answer(yes)}>
          <div class="field">
            <label for="rotate-grace">Grace period for the old secret</label>
            <select id="rotate-grace" value={grace} onChange={(e) => setGrace(e.currentTarget.value)}>
              <option value="0">none: it stops at once</option>
              <option value="3600">1 hour</option>
              <option value="86400">24 hours</option>
              <option value="604800">7 days</option>
            </select>
          </div>
        </Confirm>
      )}
      {pending?.kind === 'edit' && (
        <EditKey
          keyInfo={pending.key}
          teams={teams}
          models={models}
          onDone={(saved) => {
            setPending(undefined);
            if (!saved) return;
            setDone(`Key ${saved.name} (${saved.id}) is saved.`);
            void load();
          }}
        />
      )}
      <KeyForm
        teams={teams}
        models={models}
        onSaved={(created) => {
          const c = created as KeyWithSecret;
          setSecret({ title: `Secret of the new key ${c.name}`, secret: c.key, note: `Key id ${c.id}: spend and the API name it by this id.` });
          void load();
        }}
      />
      <h2 id="teams-title">Teams</h2>
      {teams.length === 0 ? (
        <p class="hint">No teams yet.</p>
      ) : (
        <table class="list" aria-labelledby="teams-title">
          <thead>
            <tr>
              <th scope="col">Team</th>
              <th scope="col">Name</th>
              <th scope="col">Active keys</th>
              <th scope="col">Limits (over all its keys)</th>
              <th scope="col">Budget</th>
              <th scope="col">Actions</th>
            </tr>
          </thead>
          <tbody>
            {teams.map((t) => (
              <tr key={t.id} data-team={t.id}>
                <td>
                  <code>{t.id}</code>
                </td>
                <td>{t.name}</td>
                <td class="num">{keysOfTeam(t.id)}</td>
                <td>{limitsText(t)}</td>
                <td>
                  <BudgetBar budget={t.budget} spentUsd={teamUsage.get(t.id)} owner={`team ${t.name}`} />
                </td>
                <td>
                  <button
                    type="button"
                    aria-label={`Edit team ${t.name}`}
                    onClick={() => {
                      setTeamStart(teamDraftOf(t));
                      teamForm.current?.querySelector('input')?.focus();
                    }}
                  >
                    Edit…
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <div ref={teamForm}>
        <TeamForm
          start={teamStart}
          teams={teams}
          onSaved={(team, created) => {
            setDone(`Team ${team.name} (${team.id}) is ${created ? 'created' : 'saved'}.`);
            void load();
          }}
        />
      </div>
      <p class="hint">Budget usage is the current UTC day's or month's spend from the ledger (GET /v1/spend), the figures the budget itself counts.</p>
    </section>
  );
}
