/**
 * The console in a real browser: headless Chromium (the Debian package) driven by
 * playwright-core against a real promptmesh (all-in-one, real PostgreSQL and Redis, the fake
 * provider). Signs in, finds a template, diffs two versions, renders and streams a completion,
 * creates a version, moves a label, sets a split, checks the API agrees, checks the providers
 * page; creates a virtual key (its secret shown once), spends with it, sees the spend on the spend
 * page and the key's budget bar, edits its budget, rotates and revokes it; runs axe-core on every
 * page, and signs a revoked key out.
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
/** Failed loads with status 400 that a test provokes on purpose (an invalid form the API refuses). */
let expectedBadRequests = 0;

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
  // The clipboard permissions let the secret's "Copy" button be checked.
  const context = await browser.newContext({ viewport: { width: 1280, height: 860 }, permissions: ['clipboard-read', 'clipboard-write'] });
  const p = await context.newPage();
  await p.addInitScript(`document.addEventListener('securitypolicyviolation', (e) => console.error('CSP violation: ' + e.violatedDirective + ' ' + e.blockedURI));`);
  p.on('console', (m) => {
    // 401 and 403 are what the sign-in and revocation tests provoke; anything else is a defect.
    if (m.type() !== 'error' || /status of 40[13]\b/.test(m.text())) return;
    if (/status of 400\b/.test(m.text()) && expectedBadRequests > 0) {
      expectedBadRequests--;
      return;
    }
    problems.push(`console: ${m.text()}`);
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
  await seed('PUT', '/v1/teams/growth', { name: 'Growth', budget: { usd: 5, period: 'month' } });
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

  describe('keys and spend', () => {
    let id = '';
    let secret = '';
    let rotated = '';
    const completion = (key: string, model = 'model-a') => sys.call<{ usage: { prompt_tokens: number; completion_tokens: number }; error?: { code: string } }>('POST', '/v1/chat/completions', { model, messages: [{ role: 'user', content: 'Where is my parcel?' }] }, key);
    const keyRow = () => page.locator(`tr[data-key="${id}"]`);

    it('lists the file keys read-only and creates a key, with the API\'s errors beside the field they name', async () => {
      await page.getByRole('link', { name: 'Keys' }).click();
      await page.getByRole('heading', { name: 'Keys', level: 1 }).waitFor();
      const fileRow = page.locator('tr[data-key="console-admin"]');
      await expect.poll(() => fileRow.textContent()).toContain('file (read-only)');
      expect(await fileRow.getByRole('button').count()).toBe(0);
      await page.getByLabel('Name (required)').fill('checkout-bot');
      await page.getByLabel('Allowed models').fill('model-a');
      await page.getByLabel('Requests per minute', { exact: true }).fill('0');
      await page.getByLabel('Budget in USD', { exact: true }).fill('1');
      await page.getByLabel('Budget period', { exact: true }).selectOption('day');
      await page.getByLabel('Team', { exact: true }).fill('growth');
      expectedBadRequests++;
      await page.getByRole('button', { name: 'Create key' }).click();
      // The API's 400 names `rpm`; the console shows it beside that field and marks it invalid.
      await expect.poll(() => page.locator('#key-error-rpm').textContent()).toContain("'rpm'");
      expect(await page.getByLabel('Requests per minute', { exact: true }).getAttribute('aria-invalid')).toBe('true');
      expect(await page.getByLabel('Requests per minute', { exact: true }).getAttribute('aria-describedby')).toBe('key-error-rpm');
      await expectAccessible('keys with a field error');
      expect((await sys.call<{ data: Array<{ name: string }> }>('GET', '/v1/keys')).body.data.map((k) => k.name)).not.toContain('checkout-bot');
      // An unknown team: the error moves to the team field.
      await page.getByLabel('Requests per minute', { exact: true }).fill('600');
      await page.getByLabel('Team', { exact: true }).fill('nobody');
      expectedBadRequests++;
      await page.getByRole('button', { name: 'Create key' }).click();
      await expect.poll(() => page.locator('#key-error-team').textContent()).toContain('nobody');
      expect(await page.locator('#key-error-rpm').count()).toBe(0);
      await page.getByLabel('Team', { exact: true }).fill('growth');
      // Typed in the browser's local time, stored as that instant (this process shares its zone).
      await page.getByLabel(/^Expires at/).fill('2031-06-30T12:00');
      await page.getByRole('button', { name: 'Create key' }).click();

      const box = page.getByLabel('Secret', { exact: true });
      await box.waitFor();
      secret = await box.inputValue();
      expect(secret).toMatch(/^pm-[0-9A-Za-z]{43}$/);
      expect(await page.getByRole('region', { name: /Secret of the new key checkout-bot/ }).textContent()).toContain("you won't see it again");
      await page.getByRole('button', { name: 'Copy', exact: true }).click();
      await expect.poll(() => page.getByRole('region', { name: /Secret of the new key/ }).getByRole('status').textContent()).toBe('Copied to the clipboard.');
      expect(await page.evaluate('navigator.clipboard.readText()')).toBe(secret);
      const listed = (await sys.call<{ data: Array<Record<string, unknown>> }>('GET', '/v1/keys')).body.data.find((k) => k.name === 'checkout-bot')!;
      expect(listed).toMatchObject({ models: ['model-a'], rpm: 600, budget: { usd: 1, period: 'day' }, team: 'growth', source: 'api', prefix: secret.slice(0, 11) });
      expect(listed.expires_at).toBe(new Date('2031-06-30T12:00').toISOString());
      id = listed.id as string;
      await expect.poll(() => keyRow().textContent()).toContain('active');
      expect(await keyRow().textContent()).toContain(secret.slice(0, 11));
      expect(await keyRow().textContent()).toContain(`until ${new Date('2031-06-30T12:00').toISOString().replace('T', ' ').slice(0, 19)} UTC`);
      await expectAccessible('key created, secret shown');
      await shot('key-secret');
      // Shown once: dismissed, it is nowhere in the page, the URL or the storage.
      await page.getByRole('button', { name: 'I have stored it' }).click();
      expect(await page.content()).not.toContain(secret);
      expect(page.url()).not.toContain(secret);
      expect(await page.evaluate(() => JSON.stringify({ ...sessionStorage }) + JSON.stringify({ ...localStorage }))).not.toContain(secret);
    });

    it('spends with the new secret: the spend page and the key\'s budget bar show it', async () => {
      const answered = await completion(secret);
      expect(answered.status, JSON.stringify(answered.body)).toBe(200);
      // model-a costs $1 per million input tokens and $2 per million output tokens.
      const micro = answered.body.usage.prompt_tokens + 2 * answered.body.usage.completion_tokens;
      // The allow-list holds: another model is refused.
      expect((await completion(secret, 'model-b')).status).toBe(403);
      // Only the allowed call is billed (the refused one never reached a provider); the router
      // records it just after answering.
      const since = new Date(Date.now() - 86_400_000).toISOString().slice(0, 10);
      await expect
        .poll(async () => (await sys.call<{ data: Array<{ key: string; micro_usd: number; requests: number }> }>('GET', `/v1/spend?group_by=key&from=${since}`)).body.data.find((r) => r.key === id))
        .toMatchObject({ micro_usd: micro, requests: 1 });
      const dollars = `$${(micro / 1e6).toLocaleString('en', { minimumFractionDigits: 2, maximumFractionDigits: 6 })}`;

      await page.getByRole('link', { name: 'Spend' }).click();
      await page.getByRole('heading', { name: 'Spend', level: 1 }).waitFor();
      await page.getByLabel('Range').selectOption('24h');
      await page.getByLabel('Group by').selectOption('key');
      const row = page.locator(`table.spend tr[data-group="${id}"]`);
      await expect.poll(() => row.textContent()).toContain('checkout-bot');
      expect(await row.locator('td').nth(0).textContent()).toBe('1');
      expect(await row.locator('td').nth(4).textContent()).toBe(dollars);
      expect(await page.locator('figure.chart canvas').count()).toBeGreaterThan(0);
      expect(await page.locator('figure.chart [role="img"]').getAttribute('aria-label')).toContain('checkout-bot');
      await expectAccessible('spend by key');
      await shot('spend');
      // By team: only this key is in growth. By model: the seeded traffic is on model-a too,
      // so the page must show what the API answers for it (everything here happened today).
      const byModel = await sys.call<{ data: Array<{ model: string; micro_usd: number }> }>('GET', `/v1/spend?group_by=model&from=${since}`);
      const modelA = byModel.body.data.find((r) => r.model === 'model-a')!.micro_usd;
      expect(modelA).toBeGreaterThan(micro);
      const modelDollars = `$${(modelA / 1e6).toLocaleString('en', { minimumFractionDigits: 2, maximumFractionDigits: 6 })}`;
      for (const [group, value, shown] of [
        ['team', 'growth', dollars],
        ['model', 'model-a', modelDollars],
      ] as const) {
        await page.getByLabel('Group by').selectOption(group);
        const r = page.locator(`table.spend tr[data-group="${value}"]`);
        await expect.poll(() => r.locator('td').nth(4).textContent()).toBe(shown);
      }
      await page.getByLabel('Range').selectOption('30d');
      await expect.poll(() => page.locator('table.spend tr[data-group="model-a"] td').nth(4).textContent()).toBe(modelDollars);
      await page.getByLabel('Group by').selectOption('prompt');
      await expect.poll(() => page.locator('table.spend tbody').textContent()).toContain('(no prompt)');
      // The seeded completions rendered support-reply (and "try it" one more).
      expect(await page.locator('table.spend tr[data-group="support-reply"] td').nth(0).textContent()).toBe('7');

      await page.getByRole('link', { name: 'Keys' }).click();
      // A few micro-dollars of a $1 budget.
      await expect.poll(() => keyRow().locator('.budget-text').textContent()).toBe(`${dollars} of $1.00 this day (<0.01%)`);
      expect(await keyRow().locator('meter').evaluate((m: { value: number }) => m.value)).toBe(micro / 1e6);
      await expect.poll(() => page.locator('tr[data-team="growth"] .budget-text').textContent()).toContain(`${dollars} of $5.00 this month`);
      await expectAccessible('keys and teams');
      await shot('keys');
    });

    it('edits the key in a dialog: a budget below its spend refuses it (429 budget_exceeded), an emptied budget is cleared', async () => {
      await keyRow().getByRole('button', { name: 'Edit key checkout-bot' }).click();
      const dialog = page.getByRole('dialog');
      await expect.poll(() => dialog.getByLabel('Budget in USD').inputValue()).toBe('1');
      expect(await dialog.getByLabel('Team', { exact: true }).inputValue()).toBe('growth');
      expect(await dialog.getByLabel('Allowed models').inputValue()).toBe('model-a');
      // Nothing changed: no request.
      await dialog.getByRole('button', { name: 'Save changes' }).click();
      await expect.poll(() => dialog.getByRole('alert').textContent()).toBe('Nothing changed.');
      // A refused change: the API's error beside its field, in the dialog.
      await dialog.getByLabel('Tokens per minute').fill('lots');
      expectedBadRequests++;
      await dialog.getByRole('button', { name: 'Save changes' }).click();
      await expect.poll(() => dialog.locator('#edit-error-tpm').textContent()).toContain("'tpm'");
      await expectAccessible('edit key with a field error');
      await shot('key-edit');
      await dialog.getByLabel('Tokens per minute').fill('');
      await dialog.getByLabel('Budget in USD').fill('0.00001');
      await dialog.getByRole('button', { name: 'Save changes' }).click();
      await expect.poll(() => dialog.count()).toBe(0);
      const patched = await sys.call('GET', `/v1/keys/${id}`);
      expect(patched.body).toMatchObject({ budget: { usd: 0.00001, period: 'day' }, tpm: null, rpm: 600, team: 'growth', models: ['model-a'] });
      await expect.poll(() => keyRow().locator('.budget-text').textContent()).toContain('over budget');
      const refused = await completion(secret);
      expect(refused.status).toBe(429);
      expect(refused.body.error?.code).toBe('budget_exceeded');
      await keyRow().getByRole('button', { name: 'Edit key checkout-bot' }).click();
      await page.getByRole('dialog').getByLabel('Budget in USD').fill('');
      await page.getByRole('dialog').getByRole('button', { name: 'Save changes' }).click();
      await expect.poll(() => keyRow().textContent()).toContain('no budget');
      expect((await sys.call<{ budget: unknown }>('GET', `/v1/keys/${id}`)).body.budget).toBeNull();
      expect((await completion(secret)).status).toBe(200);
    });

    it('rotates the key: the new secret shown once, the old one still working in the grace period', async () => {
      await keyRow().getByRole('button', { name: 'Rotate key checkout-bot' }).click();
      const dialog = page.getByRole('dialog');
      await dialog.getByLabel('Grace period for the old secret').selectOption('3600');
      await expectAccessible('rotate dialog');
      await dialog.getByRole('button', { name: 'Rotate' }).click();
      const box = page.getByLabel('Secret', { exact: true });
      await expect.poll(() => box.inputValue()).not.toBe(secret);
      rotated = await box.inputValue();
      expect(rotated).toMatch(/^pm-/);
      expect(await page.getByRole('region', { name: /New secret of checkout-bot/ }).textContent()).toContain('The old secret keeps working until');
      expect((await completion(rotated)).status).toBe(200);
      expect((await completion(secret)).status).toBe(200);
      await expect.poll(() => keyRow().textContent()).toContain('old secret valid until');
      const key = await sys.call<{ previous_key_valid_until: string }>('GET', `/v1/keys/${id}`);
      const grace = Date.parse(key.body.previous_key_valid_until) - Date.now();
      expect(grace).toBeGreaterThan(3_000_000);
      expect(grace).toBeLessThanOrEqual(3_600_000);
      await page.getByRole('button', { name: 'I have stored it' }).click();
    });

    it('revokes the key after a confirmation; the API refuses both secrets', async () => {
      // From the keyboard: Enter opens the dialog with Cancel focused, Escape closes it.
      await keyRow().getByRole('button', { name: 'Revoke key checkout-bot' }).focus();
      await page.keyboard.press('Enter');
      const dialog = page.getByRole('dialog');
      await expect.poll(() => dialog.textContent()).toContain('This cannot be undone');
      expect(await page.evaluate('document.activeElement?.textContent')).toBe('Cancel');
      await expectAccessible('revoke dialog');
      await page.keyboard.press('Escape');
      await expect.poll(() => dialog.count()).toBe(0);
      expect((await completion(rotated)).status).toBe(200);
      await keyRow().getByRole('button', { name: 'Revoke key checkout-bot' }).click();
      await page.getByRole('dialog').getByRole('button', { name: 'Revoke' }).click();
      await expect.poll(() => page.getByRole('status').first().textContent()).toContain(`Key checkout-bot (${id}) is revoked.`);
      for (const k of [rotated, secret]) {
        const refused = await completion(k);
        expect(refused.status).toBe(401);
      }
      // Hidden by default, listed as revoked on request; no actions on it.
      await expect.poll(() => keyRow().count()).toBe(0);
      await page.getByLabel('Show revoked').check();
      await expect.poll(() => keyRow().locator('.state').textContent()).toBe('revoked');
      expect(await keyRow().getByRole('button').count()).toBe(0);
    });

    it('creates a team and edits it from its form, with the API\'s errors beside the field they name', async () => {
      await page.getByLabel('Team id (lower case)').fill('Support Team');
      await page.getByLabel('Team name').fill('Support');
      await page.getByLabel('Team budget in USD').fill('20');
      await page.getByLabel('Team budget period').selectOption('day');
      expectedBadRequests++;
      await page.getByRole('button', { name: 'Save team' }).click();
      await expect.poll(() => page.locator('#team-error-id').textContent()).toContain("'id'");
      expect(await page.getByLabel('Team id (lower case)').getAttribute('aria-invalid')).toBe('true');
      await page.getByLabel('Team id (lower case)').fill('support');
      await page.getByRole('button', { name: 'Save team' }).click();
      await expect.poll(() => page.locator('tr[data-team="support"] .budget-text').textContent()).toBe('$0.00 of $20.00 this day (0%)');
      expect((await sys.call('GET', '/v1/teams/support')).body).toMatchObject({ name: 'Support', budget: { usd: 20, period: 'day' }, rpm: null });
      // Edit: the form is filled from the row; the whole team is replaced with what it shows.
      await page.getByRole('button', { name: 'Edit team Support' }).click();
      await expect.poll(() => page.getByLabel('Team budget in USD').inputValue()).toBe('20');
      await page.getByLabel('Team requests per minute').fill('120');
      await page.getByRole('button', { name: 'Save team' }).click();
      await expect.poll(() => page.locator('tr[data-team="support"]').textContent()).toContain('120 rpm');
      expect((await sys.call('GET', '/v1/teams/support')).body).toMatchObject({ name: 'Support', budget: { usd: 20, period: 'day' }, rpm: 120 });
      await expectAccessible('teams');
    });
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
