/**
 * The console in a real browser: headless Chromium (the Debian package) driven by
 * playwright-core against a real promptmesh (all-in-one, real PostgreSQL and Redis, the fake
 * provider). Signs in, finds a template, diffs two versions, renders and streams a completion,
 * creates a version, moves a label, sets a split, checks the API agrees, checks the providers
 * page, runs axe-core on every page, and signs a revoked key out.
 *
 * Screenshots of each page go to CONSOLE_SCREENSHOTS_DIR when set (`docs/console` refreshes the
 * README's), else to a scratch folder.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CONSOLE_KEYS, startConsoleSystem, type ConsoleSystem } from './harness';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
// Without the background-networking flags Chromium keeps trying to reach Google's services.
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const AXE_SOURCE = readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');

let sys: ConsoleSystem;
let browser: Browser;
let page: Page;
let shotsDir: string;
let scratch: string | undefined;
const problems: string[] = [];

async function shot(name: string): Promise<void> {
  await page.screenshot({ path: join(shotsDir, `${name}.png`), fullPage: true });
}

/** axe-core on the current page: no serious or critical violation. */
async function expectAccessible(what: string): Promise<void> {
  // Evaluated over the DevTools protocol, which the page's CSP does not govern.
  await page.evaluate(AXE_SOURCE);
  // Browser-side code as text: this file is type-checked for Node, without the DOM's globals.
  const violations = (await page.evaluate(`(async () => {
    const result = await axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice'] } });
    return result.violations.map((v) => ({ id: v.id, impact: v.impact, targets: v.nodes.slice(0, 3).map((n) => n.target.join(' ')) }));
  })()`)) as Array<{ id: string; impact: string; targets: string[] }>;
  const serious = violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  expect(serious, `${what}: ${JSON.stringify(serious)}`).toEqual([]);
}

async function newPage(): Promise<Page> {
  const context = await browser.newContext({ viewport: { width: 1280, height: 860 } });
  const p = await context.newPage();
  await p.addInitScript(`document.addEventListener('securitypolicyviolation', (e) => console.error('CSP violation: ' + e.violatedDirective + ' ' + e.blockedURI));`);
  p.on('console', (m) => {
    // 401 and 403 are what the sign-in and revocation tests provoke; anything else is a defect.
    if (m.type() === 'error' && !/status of 40[13]\b/.test(m.text())) problems.push(`console: ${m.text()}`);
  });
  p.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
  return p;
}

async function signIn(p: Page, key: string): Promise<void> {
  await p.goto(`${sys.url}/console/`);
  await p.getByLabel('Admin API key').fill(key);
  await p.getByRole('button', { name: 'Sign in' }).click();
  await p.getByRole('heading', { name: 'Prompts', level: 1 }).waitFor();
}

beforeAll(async () => {
  sys = await startConsoleSystem('browser');
  if (process.env.CONSOLE_SCREENSHOTS_DIR) {
    shotsDir = resolve(process.env.CONSOLE_SCREENSHOTS_DIR);
    mkdirSync(shotsDir, { recursive: true });
  } else {
    shotsDir = scratch = mkdtempSync(join(tmpdir(), 'pm-console-shots-'));
  }
  const seed = async (method: string, path: string, body?: unknown) => {
    const res = await sys.call(method, path, body);
    expect(res.status, `${method} ${path}: ${JSON.stringify(res.body)}`).toBeLessThan(300);
  };
  await seed('POST', '/v1/templates', { name: 'support-reply', type: 'text', template: 'You are a support agent for {{product}}.\nAnswer {{customer}} politely.', description: 'first draft', model: 'chat' });
  await seed('POST', '/v1/templates/support-reply/versions', {
    type: 'text',
    template: 'You are a friendly support agent for {{product}}.\nAnswer {{customer}} politely and briefly.\nSign as the {{product}} team.',
    description: 'shorter answers',
    model: 'chat',
    labels: ['staging'],
  });
  await seed('POST', '/v1/templates', { name: 'summarise', type: 'chat', template: [{ role: 'system', content: 'Summarise in {{words}} words.' }, { role: 'user', content: '{{text}}' }], model: 'chat' });
  await seed('POST', '/v1/templates', { name: 'legacy-greeting', type: 'text', template: 'Hello {{name}}', description: 'replaced' });
  await seed('DELETE', '/v1/templates/legacy-greeting');
  // Some traffic, so the split page has figures.
  for (let i = 0; i < 6; i++) {
    await seed('POST', '/v1/chat/completions', { model: 'chat', prompt: { name: 'support-reply', version: 1 + (i % 2), variables: { product: 'Acme', customer: `c${i}` } } });
  }
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS, headless: true });
  page = await newPage();
});

afterAll(async () => {
  await browser?.close().catch(() => undefined);
  await sys?.close();
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

describe('the console in Chromium', () => {
  it('signs in with an admin key kept only in session storage', async () => {
    await page.goto(`${sys.url}/console/`);
    await expectAccessible('sign-in');
    await shot('sign-in');
    // A key without the admin scope is refused with a reason.
    await page.getByLabel('Admin API key').fill(CONSOLE_KEYS.user);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await expect.poll(() => page.getByRole('alert').textContent()).toContain('admin scope');
    await signIn(page, CONSOLE_KEYS.admin);
    expect(page.url()).not.toContain(CONSOLE_KEYS.admin);
    expect(await page.evaluate(() => sessionStorage.getItem('promptmesh.console.key'))).toBe(CONSOLE_KEYS.admin);
    expect(await page.evaluate(() => localStorage.length)).toBe(0);
  });

  it('finds a template by search, archived ones only on request', async () => {
    const rows = page.locator('table.list tbody tr');
    await expect.poll(() => rows.count()).toBe(2);
    await page.getByLabel('Search templates').fill('support');
    await expect.poll(() => rows.count()).toBe(1);
    await page.getByLabel('Search templates').fill('');
    await page.getByLabel('Show archived').check();
    await expect.poll(() => rows.count()).toBe(3);
    await expect.poll(() => page.locator('table.list').textContent()).toContain('legacy-greeting');
    await expectAccessible('prompts list');
    await shot('prompts');
    await page.getByRole('link', { name: 'support-reply' }).click();
    await page.getByRole('heading', { name: 'Versions' }).waitFor();
  });

  it('diffs two versions side by side', async () => {
    const diff = page.locator('table.diff');
    await expect.poll(() => diff.locator('caption').textContent()).toContain('Version 1 against version 2');
    expect(await diff.locator('td.del').first().textContent()).toContain('You are a support agent for {{product}}.');
    expect(await diff.locator('td.ins').first().textContent()).toContain('You are a friendly support agent for {{product}}.');
    expect(await diff.locator('td.ins').allTextContents()).toContainEqual(expect.stringContaining('Sign as the {{product}} team.'));
    // Same version on both sides: no differences.
    await page.getByLabel('Left version').selectOption('2');
    await expect.poll(() => diff.locator('caption').textContent()).toContain('no differences');
    await page.getByLabel('Left version').selectOption('1');
    await expectAccessible('versions and diff');
    await shot('versions-diff');
  });

  it('renders a version from a form of its variables and streams a completion into the page', async () => {
    await page.getByRole('link', { name: 'Render & try' }).click();
    await page.getByLabel('product').fill('Acme');
    await page.getByLabel('customer').fill('Grace');
    await page.getByRole('button', { name: 'Render' }).click();
    await expect.poll(() => page.locator('ol.messages').textContent()).toContain('You are a friendly support agent for Acme.');
    await page.getByLabel('Model').selectOption('chat');
    await page.getByRole('button', { name: 'Try it' }).click();
    // The fake provider answers "echo: <the last user message>", streamed word by word.
    await expect.poll(() => page.getByTestId('completion').textContent(), { timeout: 15_000 }).toContain('echo:');
    await expect.poll(() => page.getByRole('status').last().textContent(), { timeout: 15_000 }).toContain('Done');
    await expectAccessible('render and try');
    await shot('render-try');
  });

  it('creates a version from the editor, which names missing variables as you type', async () => {
    await page.getByRole('link', { name: 'New version' }).click();
    const editor = page.getByRole('textbox', { name: /^Template/ });
    await editor.fill('Dear {{customer}}, thanks for choosing {{product}}. Tone: {{tone}}.');
    await expect.poll(() => page.locator('#new-template-check').textContent()).toContain('Missing variables: customer, product, tone');
    await page.getByLabel('customer').fill('Ada');
    await page.getByLabel('product').fill('Acme');
    await expect.poll(() => page.locator('#new-template-check').textContent()).toContain('Missing variables: tone');
    await shot('new-version');
    await page.getByLabel('tone').fill('warm');
    await expect.poll(() => page.getByRole('region', { name: 'Preview' }).textContent()).toContain('Dear Ada, thanks for choosing Acme. Tone: warm.');
    await editor.fill('Broken {{customer');
    await expect.poll(() => page.locator('#new-template-check').textContent()).toMatch(/\S/);
    expect(await page.getByRole('button', { name: 'Create version' }).isDisabled()).toBe(true);
    await editor.fill('Dear {{customer}}, thanks for choosing {{product}}. Tone: {{tone}}.');
    await page.getByLabel('Description').fill('with a tone');
    await page.getByRole('button', { name: 'Create version' }).click();
    await expect.poll(() => page.getByRole('status').last().textContent()).toContain('Created version 3');
    const v3 = await sys.call<{ version: number; template: string; variables: string[]; created_by: string }>('GET', '/v1/templates/support-reply?version=3');
    expect(v3.status).toBe(200);
    expect(v3.body.template).toBe('Dear {{customer}}, thanks for choosing {{product}}. Tone: {{tone}}.');
    expect(v3.body.variables.sort()).toEqual(['customer', 'product', 'tone']);
    expect(v3.body.created_by).toBe('console-admin');
    await expectAccessible('new version');
  });

  it('moves a label after a confirmation, and shows who moved it when', async () => {
    await page.getByRole('link', { name: 'Labels' }).click();
    await page.getByLabel('Label', { exact: true }).selectOption('production');
    await page.getByLabel('To version').selectOption('3');
    await page.getByRole('button', { name: 'Move label…' }).click();
    const dialog = page.getByRole('dialog');
    await expect.poll(() => dialog.textContent()).toContain('Move label production from v1 to v3?');
    await expectAccessible('label move confirmation');
    // Cancel first: nothing moves.
    await dialog.getByRole('button', { name: 'Cancel' }).click();
    expect((await sys.call<{ version: number }>('GET', '/v1/templates/support-reply?label=production')).body.version).toBe(1);
    await page.getByRole('button', { name: 'Move label…' }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Confirm' }).click();
    await expect.poll(() => page.getByRole('status').last().textContent()).toContain('Label production now points at v3');
    expect((await sys.call<{ version: number }>('GET', '/v1/templates/support-reply?label=production')).body.version).toBe(3);
    const history = page.getByRole('table', { name: 'History of label production' });
    // Newest first: the move just made (from v1 to v3, by the signed-in key).
    await expect.poll(() => history.locator('tbody tr').first().textContent()).toMatch(/console-admin\s*v1\s*v3$/);
    await expectAccessible('labels');
    await shot('labels');
  });

  it('sets a release split, which the API then reports, with each version\'s last hour', async () => {
    await page.getByRole('link', { name: 'Release split' }).click();
    await page.getByLabel('Label', { exact: true }).selectOption('production');
    await page.getByRole('button', { name: 'Add version' }).click();
    await page.getByLabel('Version of arm 1').selectOption('2');
    await page.getByLabel('Weight of arm 1 in percent').fill('80');
    await page.getByLabel('Version of arm 2').selectOption('3');
    await page.getByLabel('Weight of arm 2 in percent').fill('10');
    await expect.poll(() => page.getByText(/Total: 90%/).count()).toBe(1);
    expect(await page.getByRole('button', { name: 'Save split' }).isDisabled()).toBe(true);
    await page.getByLabel('Weight of arm 2 in percent').fill('20');
    await page.getByRole('button', { name: 'Save split' }).click();
    await expect.poll(() => page.getByRole('status').last().textContent()).toContain('production is now v2 80% / v3 20%');
    const list = await sys.call<{ labels: Record<string, unknown> }>('GET', '/v1/templates/support-reply/versions');
    expect(list.body.labels.production).toEqual([
      { version: 2, weight: 80 },
      { version: 3, weight: 20 },
    ]);
    // The per-version figures are the stats API's.
    const stats = await sys.call<{ versions: Array<{ version: number; requests: number }> }>('GET', '/v1/stats/prompts/support-reply');
    const table = page.getByRole('table', { name: /per version over the last hour/ });
    for (const v of stats.body.versions) {
      await expect.poll(() => table.locator(`tr[data-version="${v.version}"] td`).nth(1).textContent()).toBe(String(v.requests));
    }
    // Seeded: three calls each of v1 and v2; the "try it" above streamed one more of v2.
    expect(stats.body.versions.map((v) => v.requests)).toEqual([3, 4]);
    expect(await page.locator('figure.chart canvas').count()).toBeGreaterThan(0);
    await expectAccessible('release split');
    await shot('release-split');
  });

  it('shows providers with breaker state, figures and the aliases\' weights', async () => {
    await page.getByRole('link', { name: 'Providers' }).click();
    const table = page.getByRole('table', { name: 'Providers over the last hour' });
    await expect.poll(() => table.locator('tr[data-provider="fake-a"]').textContent()).toContain('closed');
    const stats = await sys.call<{ providers: Array<{ provider: string; requests: number }> }>('GET', '/v1/stats/providers');
    for (const p of stats.body.providers) {
      await expect.poll(() => table.locator(`tr[data-provider="${p.provider}"] td`).nth(4).textContent()).toBe(String(p.requests));
    }
    const aliases = page.getByRole('table', { name: 'Model aliases and their weights' });
    await expect.poll(() => aliases.textContent()).toContain('fake-a / model-a: 75%');
    expect(await aliases.textContent()).toContain('fake-b / model-b: 25%');
    await expectAccessible('providers');
    await shot('providers');
  });

  it('is usable from the keyboard: skip link, navigation and focusable controls', async () => {
    await page.goto(`${sys.url}/console/#/prompts`);
    // A fresh load (the key stays in session storage), so focus starts at the top.
    await page.reload();
    await page.getByRole('heading', { name: 'Prompts', level: 1 }).waitFor();
    await page.keyboard.press('Tab');
    expect(await page.evaluate('document.activeElement?.textContent')).toBe('Skip to content');
    await page.keyboard.press('Tab');
    expect(await page.evaluate('document.activeElement?.textContent')).toBe('Prompts');
    await page.keyboard.press('Tab');
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { name: 'Providers', level: 1 }).waitFor();
  });

  it('signs a revoked key out', async () => {
    const other = await newPage();
    await signIn(other, CONSOLE_KEYS.doomed);
    sys.revokeDoomedKey();
    // The router reloads the keys file (watch, and a stat every 2 s); the next call is refused.
    let flip = false;
    await expect
      .poll(
        async () => {
          if ((await other.getByLabel('Admin API key').count()) === 1) return 1;
          // Moving between pages makes API calls (the console also checks its key every 15 s).
          flip = !flip;
          await other.evaluate(`location.hash = '${flip ? '#/providers' : '#/prompts'}'`);
          return 0;
        },
        { timeout: 30_000, interval: 500 },
      )
      .toBe(1);
    expect(await other.getByRole('status').textContent()).toContain('Signed out');
    expect(await other.evaluate(() => sessionStorage.getItem('promptmesh.console.key'))).toBeNull();
    await other.context().close();
  });

  it('ran without a script error or a CSP violation', () => {
    expect(problems).toEqual([]);
  });
});
