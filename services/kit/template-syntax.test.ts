import { describe, expect, it } from 'vitest';
import {
  InvalidVariableError,
  MissingVariablesError,
  TemplateSyntaxError,
  compileTemplate,
  parseTemplate,
  pickVersion,
  renderCompiled,
  renderTemplate,
  stickyHash,
} from './template-syntax';

function thrown(fn: () => unknown): Error {
  try {
    fn();
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected a throw');
}

describe('parseTemplate', () => {
  it('derives sorted, unique variable names, with whitespace and dotted names', () => {
    expect(parseTemplate('text', 'Hi {{name}}, {{ user.name }} and {{name}} {{  z_1  }}').variables).toEqual(['name', 'user.name', 'z_1']);
    expect(
      parseTemplate('chat', [
        { role: 'system', content: 'You are {{persona}}.' },
        { role: 'user', content: '{{question}} ({{persona}})' },
      ]).variables,
    ).toEqual(['persona', 'question']);
    expect(parseTemplate('text', 'no placeholders at all { } }} {').variables).toEqual([]);
  });

  it('rejects logic, raw and malformed placeholders, naming the field and position', () => {
    for (const bad of ['{{#if admin}}x{{/if}}', '{{{raw}}}', '{{> partial}}', '{{a b}}', '{{}}', '{{ 1abc }}', '{{a..b}}']) {
      const err = thrown(() => parseTemplate('text', bad));
      expect(err, bad).toBeInstanceOf(TemplateSyntaxError);
      expect((err as TemplateSyntaxError).param).toBe('template');
      expect(err.message).toContain('logic-less');
    }
    const unclosed = thrown(() => parseTemplate('chat', [{ role: 'user', content: 'ok' }, { role: 'user', content: 'line\n  {{name' }]));
    expect((unclosed as TemplateSyntaxError).param).toBe('template[1].content');
    expect(unclosed.message).toContain('line 2, column 3');
  });

  it('checks the shape of each type', () => {
    expect((thrown(() => parseTemplate('text', ['x'])) as TemplateSyntaxError).param).toBe('template');
    expect((thrown(() => parseTemplate('chat', 'x')) as TemplateSyntaxError).param).toBe('template');
    expect((thrown(() => parseTemplate('chat', [])) as TemplateSyntaxError).param).toBe('template');
    expect((thrown(() => parseTemplate('chat', [{ role: 'wizard', content: 'x' }])) as TemplateSyntaxError).param).toBe('template[0].role');
    expect((thrown(() => parseTemplate('chat', [{ role: 'user', content: 5 }])) as TemplateSyntaxError).param).toBe('template[0].content');
    expect((thrown(() => parseTemplate('chat', [{ role: 'user', content: 'x', name: 'n' }])) as TemplateSyntaxError).param).toBe('template[0].name');
    expect((thrown(() => parseTemplate('html' as never, 'x')) as TemplateSyntaxError).param).toBe('type');
  });
});

describe('renderTemplate', () => {
  it('renders text to one user message and chat to its messages', () => {
    expect(renderTemplate('text', 'Hello {{ name }}!', { name: 'Ada' })).toEqual([{ role: 'user', content: 'Hello Ada!' }]);
    expect(
      renderTemplate(
        'chat',
        [
          { role: 'system', content: 'Answer in {{lang}}.' },
          { role: 'user', content: '{{q}}' },
        ],
        { lang: 'French', q: 'Why?' },
      ),
    ).toEqual([
      { role: 'system', content: 'Answer in French.' },
      { role: 'user', content: 'Why?' },
    ]);
  });

  it('stringifies numbers and booleans and does not HTML-escape', () => {
    expect(renderTemplate('text', '{{a}} {{b}} {{c}} {{d}}', { a: 3.5, b: false, c: '<b>&"\'</b>', d: 0 })[0]!.content).toBe('3.5 false <b>&"\'</b> 0');
  });

  it('inserts values as text: nothing in a value or template executes or is re-expanded', () => {
    const out = renderTemplate('text', '{{a}} {{b}} {{constructor}}', {
      a: '{{b}}',
      b: '${process.exit(1)} {{#each x}}',
      constructor: 'c',
    });
    expect(out[0]!.content).toBe('{{b}} ${process.exit(1)} {{#each x}} c');
    // Inherited properties are not variables.
    const err = thrown(() => renderTemplate('text', '{{toString}} {{hasOwnProperty}} {{constructor}}', {}));
    expect((err as MissingVariablesError).missing).toEqual(['constructor', 'hasOwnProperty', 'toString']);
    // Names Object.prototype answers are ordinary variables when given.
    expect(renderTemplate('text', '{{toString}}/{{prototype}}', { toString: 't', prototype: 'p' })[0]!.content).toBe('t/p');
  });

  it('refuses a reserved variable name at compile time, saying so', () => {
    for (const template of ['Hi {{__proto__}}', 'Hi {{ __proto__ }}']) {
      const err = thrown(() => compileTemplate('text', template));
      expect(err).toBeInstanceOf(TemplateSyntaxError);
      expect((err as TemplateSyntaxError).param).toBe('template');
      expect((err as Error).message).toMatch(/'__proto__' is a reserved name/);
    }
    const chat = thrown(() => compileTemplate('chat', [{ role: 'user', content: 'ok' }, { role: 'user', content: '{{__proto__}}' }]));
    expect((chat as TemplateSyntaxError).param).toBe('template[1].content');
  });

  it('writes a literal {{ for \\{{', () => {
    expect(renderTemplate('text', 'json: \\{{"a": 1}} and {{x}}', { x: 'y' })[0]!.content).toBe('json: {{"a": 1}} and y');
  });

  it('lists every missing variable at once', () => {
    const err = thrown(() => renderTemplate('chat', [{ role: 'system', content: '{{b}} {{a}}' }, { role: 'user', content: '{{c}} {{a}}' }], { c: 'x' }));
    expect(err).toBeInstanceOf(MissingVariablesError);
    expect((err as MissingVariablesError).missing).toEqual(['a', 'b']);
    expect(err.message).toBe('missing variables: a, b');
    expect((err as MissingVariablesError).param).toBe('variables');
  });

  it('rejects objects, arrays, null and non-finite numbers naming variables.<name>', () => {
    for (const [value, name] of [
      [{ a: 1 }, 'obj'],
      [[1], 'arr'],
      [null, 'nil'],
      [Number.NaN, 'nan'],
      [Infinity, 'inf'],
    ] as const) {
      const err = thrown(() => renderTemplate('text', `{{${name}}}`, { [name]: value } as never));
      expect(err).toBeInstanceOf(InvalidVariableError);
      expect((err as InvalidVariableError).param).toBe(`variables.${name}`);
    }
  });

  it('caps the rendered size', () => {
    const template = '{{x}}'.repeat(100);
    expect(() => renderTemplate('text', template, { x: 'y'.repeat(1000) }, { maxChars: 50_000 })).toThrow(/longer than 50000/);
    expect(renderTemplate('text', template, { x: 'y'.repeat(100) }, { maxChars: 50_000 })[0]!.content).toHaveLength(10_000);
  });

  it('compiles once and renders many times (what the router cache holds)', () => {
    const compiled = compileTemplate('chat', [
      { role: 'system', content: 'You are {{persona}}. Today is {{date}}.' },
      { role: 'user', content: '{{question}}' },
    ]);
    expect(compiled.variables).toEqual(['date', 'persona', 'question']);
    const a = renderCompiled(compiled, { persona: 'a pirate', date: 'Monday', question: 'Where?' });
    const b = renderCompiled(compiled, { persona: 'a judge', date: 'Friday', question: 'Why?' });
    expect(a[0]!.content).toBe('You are a pirate. Today is Monday.');
    expect(b[1]).toEqual({ role: 'user', content: 'Why?' });
  });
});

describe('pickVersion', () => {
  const split = [
    { version: 3, weight: 90 },
    { version: 4, weight: 10 },
  ];

  it('returns the only version of an unsplit label', () => {
    expect(pickVersion([{ version: 7, weight: 100 }])).toBe(7);
    expect(pickVersion([{ version: 7, weight: 100 }], 'any')).toBe(7);
  });

  it('is sticky: the same key always gets the same version', () => {
    for (let i = 0; i < 200; i++) {
      const key = `session-${i}`;
      const first = pickVersion(split, key);
      for (let j = 0; j < 5; j++) expect(pickVersion(split, key)).toBe(first);
    }
  });

  it('spreads keys by weight', () => {
    let v4 = 0;
    const n = 20_000;
    for (let i = 0; i < n; i++) if (pickVersion(split, `user-${i}`) === 4) v4++;
    expect(v4 / n).toBeGreaterThan(0.08);
    expect(v4 / n).toBeLessThan(0.12);
    let random4 = 0;
    for (let i = 0; i < n; i++) if (pickVersion(split) === 4) random4++;
    expect(random4 / n).toBeGreaterThan(0.08);
    expect(random4 / n).toBeLessThan(0.12);
  });

  it('never picks a zero-weight arm and rejects empty splits', () => {
    const s = [
      { version: 1, weight: 0 },
      { version: 2, weight: 100 },
    ];
    for (let i = 0; i < 500; i++) expect(pickVersion(s, String(i))).toBe(2);
    expect(() => pickVersion([])).toThrow(/empty/);
  });

  it('hashes deterministically', () => {
    expect(stickyHash('abc')).toBe(stickyHash('abc'));
    expect(stickyHash('abc')).not.toBe(stickyHash('abd'));
  });
});
