/** The template list: search by name or description, archived ones on request. */
import { useEffect, useState } from 'preact/hooks';
import { allTemplates, type TemplateSummary } from '../api';
import { splitText, when } from '../format';

export function PromptsPage() {
  const [templates, setTemplates] = useState<TemplateSummary[] | undefined>();
  const [error, setError] = useState('');
  const [query, setQuery] = useState('');
  const [archived, setArchived] = useState(false);

  useEffect(() => {
    allTemplates().then(setTemplates, (err: Error) => setError(err.message));
  }, []);

  const q = query.trim().toLowerCase();
  const shown = (templates ?? []).filter(
    (t) => (archived || !t.archived) && (q === '' || t.name.toLowerCase().includes(q) || (t.description ?? '').toLowerCase().includes(q)),
  );
  return (
    <section aria-labelledby="prompts-title">
      <h1 id="prompts-title">Prompts</h1>
      <div class="toolbar" role="search">
        <label for="prompt-search">Search templates</label>
        <input id="prompt-search" type="search" value={query} onInput={(e) => setQuery(e.currentTarget.value)} placeholder="name or description" />
        <label class="check">
          <input type="checkbox" checked={archived} onChange={(e) => setArchived(e.currentTarget.checked)} /> Show archived
        </label>
      </div>
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
      {templates === undefined && !error && <p aria-busy="true">Loading…</p>}
      {templates !== undefined && (
        <table class="list">
          <caption class="sr-only">Templates</caption>
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Latest</th>
              <th scope="col">Labels</th>
              <th scope="col">Description</th>
              <th scope="col">Updated</th>
            </tr>
          </thead>
          <tbody>
            {shown.map((t) => (
              <tr key={t.name}>
                <td>
                  <a href={`#/prompts/${encodeURIComponent(t.name)}`}>{t.name}</a>
                  {t.archived && <span class="tag">archived</span>}
                </td>
                <td>v{t.latest_version}</td>
                <td>
                  {Object.entries(t.labels).map(([label, split]) => (
                    <span class="tag" key={label}>
                      {label}: {splitText(split)}
                    </span>
                  ))}
                </td>
                <td>{t.description ?? ''}</td>
                <td>{when(t.updated_at)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {templates !== undefined && (
        <p role="status" class="hint">
          {shown.length} of {templates.length} templates
        </p>
      )}
    </section>
  );
}
