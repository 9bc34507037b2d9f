/** A side-by-side line diff of two template versions (jsdiff). */
import { diffLines } from 'diff';
import type { TemplateVersion } from './api';

/** The text a version is compared as: a text template as is, a chat template one block per message. */
export function versionText(v: TemplateVersion): string {
  if (typeof v.template === 'string') return v.template;
  return v.template.map((m) => `[${m.role}]\n${m.content}`).join('\n\n');
}

interface Row {
  left: string | null;
  right: string | null;
  kind: 'same' | 'changed' | 'removed' | 'added';
}

function lines(value: string): string[] {
  const out = value.split('\n');
  if (out[out.length - 1] === '') out.pop();
  return out;
}

/** Pairs removed and added runs line by line, so a changed line sits beside its replacement. */
export function sideBySide(a: string, b: string): Row[] {
  const rows: Row[] = [];
  const parts = diffLines(a, b);
  for (let i = 0; i < parts.length; i++) {
    const part = parts[i]!;
    if (!part.added && !part.removed) {
      for (const l of lines(part.value)) rows.push({ left: l, right: l, kind: 'same' });
      continue;
    }
    if (part.removed) {
      const removed = lines(part.value);
      const next = parts[i + 1];
      const added = next?.added ? lines(next.value) : [];
      if (next?.added) i++;
      for (let j = 0; j < Math.max(removed.length, added.length); j++) {
        const left = removed[j] ?? null;
        const right = added[j] ?? null;
        rows.push({ left, right, kind: left !== null && right !== null ? 'changed' : left !== null ? 'removed' : 'added' });
      }
      continue;
    }
    for (const l of lines(part.value)) rows.push({ left: null, right: l, kind: 'added' });
  }
  return rows;
}

export function SideBySideDiff({ left, right }: { left: TemplateVersion; right: TemplateVersion }) {
  const rows = sideBySide(versionText(left), versionText(right));
  const changes = rows.filter((r) => r.kind !== 'same').length;
  return (
    <table class="diff" aria-label={`Differences between version ${left.version} and version ${right.version}`}>
      <caption>
        Version {left.version} against version {right.version}: {changes === 0 ? 'no differences' : `${changes} changed line${changes === 1 ? '' : 's'}`}
      </caption>
      <thead>
        <tr>
          <th scope="col">Version {left.version}</th>
          <th scope="col">Version {right.version}</th>
        </tr>
      </thead>
      <tbody>
        {rows.map((r, i) => (
          <tr key={i} class={r.kind}>
            <td class={r.kind === 'changed' || r.kind === 'removed' ? 'del' : ''}>
              {r.left !== null && (r.kind === 'changed' || r.kind === 'removed') && <span class="sr-only">removed: </span>}
              {r.left ?? ''}
            </td>
            <td class={r.kind === 'changed' || r.kind === 'added' ? 'ins' : ''}>
              {r.right !== null && (r.kind === 'changed' || r.kind === 'added') && <span class="sr-only">added: </span>}
              {r.right ?? ''}
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}
