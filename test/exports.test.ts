/**
 * No two exported things share a name: a reader (or an editor's auto-import) who meets
 * `ConfigError` must not have to find out which of two it is. Every module of the services,
 * contracts, the libraries (infra) and the stacks is read with the TypeScript parser, so types
 * count as much as values; a re-export (`export { x } from`) is the same thing under the same
 * name, so only declarations count.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const ROOT = join(__dirname, '..');
const FOLDERS = ['contracts', 'services', 'infra', 'stacks'];

function modules(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...modules(path));
    else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.test.ts') && !entry.name.endsWith('.d.ts')) out.push(path);
  }
  return out;
}

function isExported(node: ts.Node): boolean {
  return ts.canHaveModifiers(node) && (ts.getModifiers(node) ?? []).some((m) => m.kind === ts.SyntaxKind.ExportKeyword);
}

/** The names a module declares and exports (not the ones it re-exports from elsewhere). */
function declaredExports(text: string, fileName = 'module.ts'): string[] {
  const source = ts.createSourceFile(fileName, text, ts.ScriptTarget.ES2022, false, ts.ScriptKind.TS);
  const names: string[] = [];
  const local = new Set<string>();
  for (const statement of source.statements) {
    if (ts.isVariableStatement(statement)) {
      for (const d of statement.declarationList.declarations) {
        if (!ts.isIdentifier(d.name)) continue;
        local.add(d.name.text);
        if (isExported(statement)) names.push(d.name.text);
      }
      continue;
    }
    if (
      (ts.isClassDeclaration(statement) || ts.isFunctionDeclaration(statement) || ts.isInterfaceDeclaration(statement) || ts.isTypeAliasDeclaration(statement) || ts.isEnumDeclaration(statement)) &&
      statement.name
    ) {
      local.add(statement.name.text);
      if (isExported(statement)) names.push(statement.name.text);
    }
  }
  // `export { a, b as c }` of the module's own declarations: `c` is a second name for `a`.
  for (const statement of source.statements) {
    if (!ts.isExportDeclaration(statement) || statement.moduleSpecifier || !statement.exportClause || !ts.isNamedExports(statement.exportClause)) continue;
    for (const el of statement.exportClause.elements) if (local.has((el.propertyName ?? el.name).text)) names.push(el.name.text);
  }
  return [...new Set(names)];
}

describe('exported names', () => {
  it('are read from declarations, not re-exports', () => {
    const names = declaredExports(
      "export const A = 1; export interface B {} export type C = 1; export class D {} export function E() {} export enum F {}\n" +
        "const g = 1; export { g as G }; export { H } from './h'; export * from './i'; const hidden = 2; function alsoHidden() {}",
    );
    expect(names.sort()).toEqual(['A', 'B', 'C', 'D', 'E', 'F', 'G']);
  });

  it('are unique across the services, contracts, the libraries and the stacks', () => {
    const byName = new Map<string, string[]>();
    for (const file of FOLDERS.flatMap((f) => modules(join(ROOT, f)))) {
      for (const name of declaredExports(readFileSync(file, 'utf8'), file)) {
        byName.set(name, [...(byName.get(name) ?? []), relative(ROOT, file)]);
      }
    }
    const duplicates = [...byName].filter(([, files]) => files.length > 1).map(([name, files]) => `${name}: ${files.join(', ')}`);
    expect(duplicates).toEqual([]);
  });
});
