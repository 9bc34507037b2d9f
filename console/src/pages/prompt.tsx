/**
 * One template: its versions with a side-by-side diff, render and "try it", a new version,
 * labels with their history, and the release split with each version's last hour.
 */
import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { ApiError, allVersions, api, streamChat, type LabelMove, type PromptStats, type SplitEntry, type TemplateMessage, type TemplateVersion, type VersionList } from '../api';
import { LineChart } from '../chart';
import { Confirm } from '../dialog';
import { SideBySideDiff } from '../diff';
import { ms, percent, splitText, usd, when } from '../format';
import { TemplateError, compileTemplate, renderCompiled, type TemplateType } from '../../../services/kit/template-syntax';

const TABS = [
  ['versions', 'Versions'],
  ['try', 'Render & try'],
  ['new', 'New version'],
  ['labels', 'Labels'],
  ['split', 'Release split'],
] as const;

function ErrorNote({ error }: { error: string }) {
  return error ? (
    <p class="error" role="alert">
      {error}
    </p>
  ) : null;
}

function messageOf(err: unknown): string {
  if (err instanceof ApiError) return err.param ? `${err.message} (field: ${err.param})` : err.message;
  return (err as Error).message;
}

export function PromptPage({ name, tab }: { name: string; tab: string }) {
  const [list, setList] = useState<VersionList | undefined>();
  const [error, setError] = useState('');
  const reload = () => allVersions(name).then(setList, (err: unknown) => setError(messageOf(err)));
  useEffect(() => void reload(), [name]);

  return (
    <section aria-labelledby="prompt-title">
      <p class="crumbs">
        <a href="#/prompts">Prompts</a> /
      </p>
      <h1 id="prompt-title">
        {name} {list?.archived && <span class="tag">archived</span>}
      </h1>
      <nav class="tabs" aria-label="Template views">
        {TABS.map(([id, title]) => (
          <a key={id} href={`#/prompts/${encodeURIComponent(name)}/${id}`} aria-current={tab === id ? 'page' : undefined}>
            {title}
          </a>
        ))}
      </nav>
      <ErrorNote error={error} />
      {list === undefined && !error && <p aria-busy="true">Loading…</p>}
      {list && tab === 'versions' && <Versions list={list} />}
      {list && tab === 'try' && <RenderTry list={list} />}
      {list && tab === 'new' && <NewVersion list={list} onCreated={reload} />}
      {list && tab === 'labels' && <Labels list={list} onMoved={reload} />}
      {list && tab === 'split' && <Split list={list} onSaved={reload} />}
    </section>
  );
}

function labelsAt(list: VersionList, version: number): string[] {
  return Object.entries(list.labels)
    .filter(([, split]) => split.some((e) => e.version === version && e.weight > 0))
    .map(([label]) => label);
}

function VersionSelect({ id, label, list, value, onChange }: { id: string; label: string; list: VersionList; value: number; onChange: (v: number) => void }) {
  return (
    <>
      <label for={id}>{label}</label>
      <select id={id} value={String(value)} onChange={(e) => onChange(Number(e.currentTarget.value))}>
        {list.data.map((v) => (
          <option key={v.version} value={String(v.version)}>
            v{v.version}
            {v.description ? ` – ${v.description}` : ''}
          </option>
        ))}
      </select>
    </>
  );
}

function Versions({ list }: { list: VersionList }) {
  const latest = list.latest_version;
  const [left, setLeft] = useState(Math.max(1, latest - 1));
  const [right, setRight] = useState(latest);
  const a = list.data.find((v) => v.version === left);
  const b = list.data.find((v) => v.version === right);
  return (
    <>
      <h2>Versions</h2>
      <table class="list">
        <thead>
          <tr>
            <th scope="col">Version</th>
            <th scope="col">Created</th>
            <th scope="col">By</th>
            <th scope="col">Labels</th>
            <th scope="col">Variables</th>
            <th scope="col">Description</th>
          </tr>
        </thead>
        <tbody>
          {[...list.data].reverse().map((v) => (
            <tr key={v.version}>
              <td>v{v.version}</td>
              <td>{when(v.created_at)}</td>
              <td>{v.created_by}</td>
              <td>
                {labelsAt(list, v.version).map((l) => (
                  <span class="tag" key={l}>
                    {l}
                  </span>
                ))}
              </td>
              <td>{v.variables.join(', ')}</td>
              <td>{v.description ?? ''}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <h2>Compare</h2>
      <div class="toolbar">
        <VersionSelect id="diff-left" label="Left version" list={list} value={left} onChange={setLeft} />
        <VersionSelect id="diff-right" label="Right version" list={list} value={right} onChange={setRight} />
      </div>
      {a && b && <SideBySideDiff left={a} right={b} />}
    </>
  );
}

function VariablesForm({
  names,
  values,
  onChange,
  idPrefix,
  legend = 'Variables',
}: {
  names: string[];
  values: Record<string, string>;
  onChange: (v: Record<string, string>) => void;
  idPrefix: string;
  legend?: string;
}) {
  if (names.length === 0) return <p class="hint">This version uses no variables.</p>;
  return (
    <fieldset>
      <legend>{legend}</legend>
      {names.map((n) => (
        <div class="field" key={n}>
          <label for={`${idPrefix}-${n}`}>{n}</label>
          <input id={`${idPrefix}-${n}`} value={values[n] ?? ''} onInput={(e) => onChange({ ...values, [n]: e.currentTarget.value })} />
        </div>
      ))}
    </fieldset>
  );
}

function Messages({ messages }: { messages: TemplateMessage[] }) {
  return (
    <ol class="messages">
      {messages.map((m, i) => (
        <li key={i}>
          <strong>{m.role}</strong>
          <pre>{m.content}</pre>
        </li>
      ))}
    </ol>
  );
}

function RenderTry({ list }: { list: VersionList }) {
  const [version, setVersion] = useState(list.latest_version);
  const [values, setValues] = useState<Record<string, string>>({});
  const [rendered, setRendered] = useState<TemplateMessage[] | undefined>();
  const [models, setModels] = useState<string[]>([]);
  const [model, setModel] = useState('');
  const [output, setOutput] = useState('');
  const [status, setStatus] = useState('');
  const [error, setError] = useState('');
  const [running, setRunning] = useState(false);
  const abort = useRef<AbortController | undefined>(undefined);
  const v = list.data.find((x) => x.version === version)!;

  useEffect(() => {
    api<{ data: Array<{ id: string }> }>('GET', '/v1/models').then(
      (m) => {
        const ids = m.data.map((x) => x.id);
        setModels(ids);
        setModel((cur) => cur || (v.model && ids.includes(v.model) ? v.model : (ids[0] ?? '')));
      },
      (err: unknown) => setError(messageOf(err)),
    );
    return () => abort.current?.abort();
  }, []);

  async function doRender(e: Event) {
    e.preventDefault();
    setError('');
    try {
      const r = await api<{ messages: TemplateMessage[] }>('POST', `/v1/templates/${encodeURIComponent(list.name)}/render`, { version, variables: values });
      setRendered(r.messages);
    } catch (err) {
      setRendered(undefined);
      setError(messageOf(err));
    }
  }

  async function tryIt() {
    setError('');
    setOutput('');
    setStatus('Streaming…');
    setRunning(true);
    abort.current = new AbortController();
    let text = '';
    try {
      for await (const part of streamChat({ model, prompt: { name: list.name, version, variables: values } }, abort.current.signal)) {
        if (part.delta) {
          text += part.delta;
          setOutput(text);
        }
        if (part.usage) setStatus(`Done: ${part.usage.prompt_tokens ?? 0} input and ${part.usage.completion_tokens ?? 0} output tokens, ${usd(part.usage.cost_usd ?? 0)}.`);
      }
      setStatus((s) => (s === 'Streaming…' ? 'Done.' : s));
    } catch (err) {
      if ((err as Error).name !== 'AbortError') setError(messageOf(err));
      setStatus('');
    } finally {
      setRunning(false);
    }
  }

  return (
    <>
      <h2>Render preview</h2>
      <form onSubmit={doRender}>
        <div class="toolbar">
          <VersionSelect id="render-version" label="Version" list={list} value={version} onChange={(n) => (setVersion(n), setRendered(undefined))} />
        </div>
        <VariablesForm names={v.variables} values={values} onChange={setValues} idPrefix="var" />
        <button type="submit">Render</button>
      </form>
      <ErrorNote error={error} />
      {rendered && (
        <section aria-label="Rendered messages">
          <Messages messages={rendered} />
        </section>
      )}
      <h2>Try it</h2>
      <div class="toolbar">
        <label for="try-model">Model</label>
        <select id="try-model" value={model} onChange={(e) => setModel(e.currentTarget.value)}>
          {models.map((m) => (
            <option key={m} value={m}>
              {m}
            </option>
          ))}
        </select>
        <button type="button" onClick={() => void tryIt()} disabled={running || !model}>
          Try it
        </button>
        {running && (
          <button type="button" onClick={() => abort.current?.abort()}>
            Stop
          </button>
        )}
      </div>
      <p class="hint">Streams a completion of the rendered version from the chosen model (it is billed like any request).</p>
      <pre class="output" aria-live="polite" aria-label="Completion" data-testid="completion">
        {output}
      </pre>
      <p role="status">{status}</p>
    </>
  );
}

/** The editor's reading of what is typed: variables, syntax error, the variables still without a sample value, a preview. */
function analyse(type: TemplateType, source: string, values: Record<string, string>) {
  let template: unknown = source;
  if (type === 'chat') {
    try {
      template = JSON.parse(source);
    } catch (err) {
      return { error: `The chat template must be a JSON list of {"role", "content"}: ${(err as Error).message}`, variables: [] as string[], missing: [] as string[] };
    }
  }
  try {
    const compiled = compileTemplate(type, template);
    const missing = compiled.variables.filter((n) => (values[n] ?? '') === '');
    let preview: TemplateMessage[] | undefined;
    if (missing.length === 0) preview = renderCompiled(compiled, values) as TemplateMessage[];
    return { error: '', variables: compiled.variables, missing, preview };
  } catch (err) {
    return { error: err instanceof TemplateError ? err.message : String(err), variables: [] as string[], missing: [] as string[] };
  }
}

function sourceOf(v: TemplateVersion): string {
  return typeof v.template === 'string' ? v.template : JSON.stringify(v.template, null, 2);
}

function NewVersion({ list, onCreated }: { list: VersionList; onCreated: () => Promise<void> }) {
  const latest = list.data.find((v) => v.version === list.latest_version)!;
  const [source, setSource] = useState(sourceOf(latest));
  const [description, setDescription] = useState('');
  const [model, setModel] = useState(latest.model ?? '');
  const [labels, setLabels] = useState('');
  const [values, setValues] = useState<Record<string, string>>({});
  const [error, setError] = useState('');
  const [done, setDone] = useState('');
  const [busy, setBusy] = useState(false);
  const state = useMemo(() => analyse(latest.type, source, values), [source, values]);

  async function submit(e: Event) {
    e.preventDefault();
    setError('');
    setDone('');
    setBusy(true);
    try {
      const template = latest.type === 'chat' ? (JSON.parse(source) as unknown) : source;
      const names = labels
        .split(',')
        .map((l) => l.trim())
        .filter(Boolean);
      const created = await api<{ version: number }>('POST', `/v1/templates/${encodeURIComponent(list.name)}/versions`, {
        type: latest.type,
        template,
        ...(description ? { description } : {}),
        ...(model ? { model } : {}),
        ...(names.length ? { labels: names } : {}),
      });
      setDone(`Created version ${created.version}.`);
      await onCreated();
    } catch (err) {
      setError(messageOf(err));
    } finally {
      setBusy(false);
    }
  }

  return (
    <form onSubmit={submit} class="editor">
      <h2>New version (from v{latest.version})</h2>
      <label for="new-template">Template ({latest.type === 'chat' ? 'chat: JSON list of messages' : 'text'})</label>
      <textarea id="new-template" rows={10} spellcheck={false} value={source} onInput={(e) => setSource(e.currentTarget.value)} aria-describedby="new-template-check" />
      <div id="new-template-check" aria-live="polite">
        {state.error ? (
          <p class="error">{state.error}</p>
        ) : (
          <p>
            Variables: {state.variables.length ? state.variables.join(', ') : 'none'}.{' '}
            {state.missing.length > 0 && <strong class="warn">Missing variables: {state.missing.join(', ')}</strong>}
          </p>
        )}
      </div>
      <VariablesForm names={state.variables} values={values} onChange={setValues} idPrefix="sample" legend="Sample values (for the preview; not saved)" />
      {state.preview && (
        <section aria-label="Preview">
          <h3>Preview</h3>
          <Messages messages={state.preview} />
        </section>
      )}
      <div class="field">
        <label for="new-description">Description</label>
        <input id="new-description" value={description} onInput={(e) => setDescription(e.currentTarget.value)} />
      </div>
      <div class="field">
        <label for="new-model">Model</label>
        <input id="new-model" value={model} onInput={(e) => setModel(e.currentTarget.value)} />
      </div>
      <div class="field">
        <label for="new-labels">Move labels to it (comma-separated, optional)</label>
        <input id="new-labels" value={labels} onInput={(e) => setLabels(e.currentTarget.value)} />
      </div>
      <button type="submit" disabled={busy || state.error !== ''}>
        Create version
      </button>
      <ErrorNote error={error} />
      {done && <p role="status">{done}</p>}
    </form>
  );
}

function History({ name, label }: { name: string; label: string }) {
  const [moves, setMoves] = useState<LabelMove[] | undefined>();
  const [error, setError] = useState('');
  useEffect(() => {
    api<{ data: LabelMove[] }>('GET', `/v1/templates/${encodeURIComponent(name)}/labels/${encodeURIComponent(label)}/history?limit=50`).then(
      (h) => setMoves(h.data),
      (err: unknown) => setError(messageOf(err)),
    );
  }, [name, label]);
  if (error) return <ErrorNote error={error} />;
  if (!moves) return <p aria-busy="true">Loading history…</p>;
  return (
    <table class="list" aria-label={`History of label ${label}`}>
      <thead>
        <tr>
          <th scope="col">When</th>
          <th scope="col">Who</th>
          <th scope="col">From</th>
          <th scope="col">To</th>
        </tr>
      </thead>
      <tbody>
        {moves.map((m, i) => (
          <tr key={i}>
            <td>{when(m.at)}</td>
            <td>{m.actor}</td>
            <td>{m.from ? splitText(m.from) : '(new)'}</td>
            <td>{splitText(m.to)}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function Labels({ list, onMoved }: { list: VersionList; onMoved: () => Promise<void> }) {
  const names = Object.keys(list.labels).sort();
  const [label, setLabel] = useState(names.includes('production') ? 'production' : (names[0] ?? 'production'));
  const [newLabel, setNewLabel] = useState('');
  const [target, setTarget] = useState(list.latest_version);
  const [asking, setAsking] = useState(false);
  const [error, setError] = useState('');
  const [done, setDone] = useState('');
  const [historyKey, setHistoryKey] = useState(0);
  const chosen = newLabel.trim() || label;
  const current = list.labels[chosen];

  async function answer(yes: boolean) {
    setAsking(false);
    if (!yes) return;
    setError('');
    try {
      await api('PUT', `/v1/templates/${encodeURIComponent(list.name)}/labels/${encodeURIComponent(chosen)}`, { version: target });
      setDone(`Label ${chosen} now points at v${target}.`);
      setNewLabel('');
      setLabel(chosen);
      await onMoved();
      setHistoryKey((k) => k + 1);
    } catch (err) {
      setError(messageOf(err));
    }
  }

  return (
    <>
      <h2>Labels</h2>
      <table class="list">
        <thead>
          <tr>
            <th scope="col">Label</th>
            <th scope="col">Points at</th>
          </tr>
        </thead>
        <tbody>
          {names.map((l) => (
            <tr key={l}>
              <td>{l}</td>
              <td>{splitText(list.labels[l]!)}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <h2>Move a label</h2>
      <div class="toolbar">
        <label for="label-name">Label</label>
        <select id="label-name" value={label} onChange={(e) => setLabel(e.currentTarget.value)}>
          {names.map((l) => (
            <option key={l} value={l}>
              {l}
            </option>
          ))}
        </select>
        <label for="label-new">or a new label</label>
        <input id="label-new" value={newLabel} onInput={(e) => setNewLabel(e.currentTarget.value)} />
        <VersionSelect id="label-target" label="To version" list={list} value={target} onChange={setTarget} />
        <button type="button" onClick={() => setAsking(true)}>
          Move label…
        </button>
      </div>
      {asking && <Confirm question={`Move label ${chosen} from ${current ? splitText(current) : '(new label)'} to v${target}? Traffic that resolves ${chosen} switches at once.`} onAnswer={(yes) => void answer(yes)} />}
      <ErrorNote error={error} />
      {done && <p role="status">{done}</p>}
      <h2>History of {label}</h2>
      <History key={`${label}-${historyKey}`} name={list.name} label={label} />
    </>
  );
}

function Split({ list, onSaved }: { list: VersionList; onSaved: () => Promise<void> }) {
  const names = Object.keys(list.labels).sort();
  const [label, setLabel] = useState(names.includes('production') ? 'production' : (names[0] ?? 'production'));
  const [arms, setArms] = useState<SplitEntry[]>(list.labels[label] ?? [{ version: list.latest_version, weight: 100 }]);
  const [error, setError] = useState('');
  const [done, setDone] = useState('');
  const [stats, setStats] = useState<PromptStats | undefined>();
  const [statsError, setStatsError] = useState('');

  const loadStats = () =>
    api<PromptStats>('GET', `/v1/stats/prompts/${encodeURIComponent(list.name)}`).then(
      (s) => (setStats(s), setStatsError('')),
      (err: unknown) => setStatsError(messageOf(err)),
    );
  useEffect(() => {
    void loadStats();
    const timer = setInterval(() => void loadStats(), 15_000);
    return () => clearInterval(timer);
  }, [list.name]);

  const total = arms.reduce((n, a) => n + (Number.isFinite(a.weight) ? a.weight : 0), 0);
  const set = (i: number, patch: Partial<SplitEntry>) => setArms(arms.map((a, j) => (j === i ? { ...a, ...patch } : a)));

  async function save(e: Event) {
    e.preventDefault();
    setError('');
    setDone('');
    try {
      await api('PUT', `/v1/templates/${encodeURIComponent(list.name)}/labels/${encodeURIComponent(label)}`, { versions: arms });
      setDone(`Label ${label} is now ${splitText(arms)}.`);
      await onSaved();
    } catch (err) {
      setError(messageOf(err));
    }
  }

  const times = stats?.versions[0]?.points.map((p) => p.t) ?? [];
  const series = useMemo(() => (stats?.versions ?? []).map((v) => ({ label: `v${v.version}`, values: v.points.map((p) => p.requests) })), [stats]);
  const latency = useMemo(() => (stats?.versions ?? []).map((v) => ({ label: `v${v.version}`, values: v.points.map((p) => p.latency_ms_mean) })), [stats]);

  return (
    <>
      <h2>Release split</h2>
      <p class="hint">
        A label can split traffic across up to four versions. The pick is sticky per session (<code>session_id</code>): a conversation keeps its version while the
        split is unchanged; requests without a session are picked at random by weight.
      </p>
      <form onSubmit={save}>
        <div class="toolbar">
          <label for="split-label">Label</label>
          <select
            id="split-label"
            value={label}
            onChange={(e) => {
              const l = e.currentTarget.value;
              setLabel(l);
              setArms(list.labels[l] ?? []);
            }}
          >
            {names.map((l) => (
              <option key={l} value={l}>
                {l}
              </option>
            ))}
          </select>
        </div>
        <table class="list">
          <thead>
            <tr>
              <th scope="col">Version</th>
              <th scope="col">Weight (%)</th>
              <th scope="col">
                <span class="sr-only">Remove</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {arms.map((a, i) => (
              <tr key={i}>
                <td>
                  <label class="sr-only" for={`arm-version-${i}`}>
                    Version of arm {i + 1}
                  </label>
                  <select id={`arm-version-${i}`} value={String(a.version)} onChange={(e) => set(i, { version: Number(e.currentTarget.value) })}>
                    {list.data.map((v) => (
                      <option key={v.version} value={String(v.version)}>
                        v{v.version}
                      </option>
                    ))}
                  </select>
                </td>
                <td>
                  <label class="sr-only" for={`arm-weight-${i}`}>
                    Weight of arm {i + 1} in percent
                  </label>
                  <input id={`arm-weight-${i}`} type="number" min={0} max={100} step={1} value={String(a.weight)} onInput={(e) => set(i, { weight: Number(e.currentTarget.value) })} />
                </td>
                <td>
                  <button type="button" onClick={() => setArms(arms.filter((_, j) => j !== i))} disabled={arms.length === 1}>
                    Remove<span class="sr-only"> arm {i + 1}</span>
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
        <div class="toolbar">
          <button type="button" onClick={() => setArms([...arms, { version: list.latest_version, weight: 0 }])} disabled={arms.length >= 4}>
            Add version
          </button>
          <span role="status" class={total === 100 ? '' : 'warn'}>
            Total: {total}%{total === 100 ? '' : ' (must be 100)'}
          </span>
          <button type="submit" disabled={total !== 100}>
            Save split
          </button>
        </div>
      </form>
      <ErrorNote error={error} />
      {done && <p role="status">{done}</p>}
      <h2>Last hour, per version</h2>
      <ErrorNote error={statsError} />
      {stats && (
        <>
          <table class="list" aria-label="Traffic, latency, errors and cost per version over the last hour">
            <thead>
              <tr>
                <th scope="col">Version</th>
                <th scope="col">Requests</th>
                <th scope="col">Error rate</th>
                <th scope="col">Latency p50</th>
                <th scope="col">Latency p95</th>
                <th scope="col">Cost</th>
              </tr>
            </thead>
            <tbody>
              {stats.versions.map((v) => (
                <tr key={v.version} data-version={v.version}>
                  <td>v{v.version}</td>
                  <td class="num">{v.requests.toLocaleString('en')}</td>
                  <td class="num">{percent(v.error_rate)}</td>
                  <td class="num">{ms(v.latency_ms.p50)}</td>
                  <td class="num">{ms(v.latency_ms.p95)}</td>
                  <td class="num">{usd(v.cost_usd)}</td>
                </tr>
              ))}
            </tbody>
          </table>
          {stats.versions.length === 0 && <p class="hint">No requests used this template in the last hour.</p>}
          {stats.versions.length > 0 && (
            <>
              <LineChart title="Requests per minute, per version" times={times} series={series} unit="requests" />
              <LineChart title="Mean latency per minute, per version" times={times} series={latency} unit="ms" />
            </>
          )}
          <p class="hint">Latency quantiles are histogram bucket bounds; figures lag by about a second.</p>
        </>
      )}
    </>
  );
}

