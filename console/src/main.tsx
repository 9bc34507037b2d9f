/**
 * The console's shell: sign-in, navigation and the hash routes (`#/prompts`,
 * `#/prompts/<name>/<tab>`, `#/providers`, `#/keys`, `#/spend`). Hash routes need nothing from the server beyond
 * index.html and keep the console working under any path prefix.
 */
import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import 'uplot/dist/uPlot.min.css';
import './styles.css';
import { ApiError, currentKey, onSignedOut, signIn, signOut, api } from './api';
import { PromptsPage } from './pages/prompts';
import { PromptPage } from './pages/prompt';
import { ProvidersPage } from './pages/providers';
import { KeysPage } from './pages/keys';
import { SpendPage } from './pages/spend';

/** How often a signed-in console checks that its key is still accepted (a revoked key signs out). */
const KEY_CHECK_MS = 15_000;

function useHash(): string {
  const [hash, setHash] = useState(location.hash);
  useEffect(() => {
    const on = () => setHash(location.hash);
    addEventListener('hashchange', on);
    return () => removeEventListener('hashchange', on);
  }, []);
  return hash;
}

function SignIn({ notice, onDone }: { notice: string; onDone: () => void }) {
  const [key, setKey] = useState('');
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);
  async function submit(e: Event) {
    e.preventDefault();
    setBusy(true);
    setError('');
    try {
      await signIn(key.trim());
      setKey('');
      onDone();
    } catch (err) {
      setError(err instanceof ApiError && err.status === 401 ? 'This key is not accepted.' : (err as Error).message);
    } finally {
      setBusy(false);
    }
  }
  return (
    <main class="signin">
      <h1>promptmesh console</h1>
      {notice && (
        <p class="notice" role="status">
          {notice}
        </p>
      )}
      <form onSubmit={submit} aria-labelledby="signin-title">
        <h2 id="signin-title">Sign in</h2>
        <label for="api-key">Admin API key</label>
        <input id="api-key" type="password" autocomplete="off" required value={key} onInput={(e) => setKey(e.currentTarget.value)} />
        <p class="hint">Kept in this tab's session storage only; it is sent to the promptmesh API and nowhere else.</p>
        <button type="submit" disabled={busy || key.trim() === ''}>
          Sign in
        </button>
        {error && (
          <p class="error" role="alert">
            {error}
          </p>
        )}
      </form>
    </main>
  );
}

function App() {
  const [signedIn, setSignedIn] = useState(currentKey() !== null);
  const [notice, setNotice] = useState('');
  const hash = useHash();

  useEffect(
    () =>
      onSignedOut((reason) => {
        setNotice(reason);
        setSignedIn(false);
      }),
    [],
  );
  useEffect(() => {
    if (!signedIn) return;
    const timer = setInterval(() => void api('GET', '/v1/providers').catch(() => undefined), KEY_CHECK_MS);
    return () => clearInterval(timer);
  }, [signedIn]);

  if (!signedIn) return <SignIn notice={notice} onDone={() => ((setNotice(''), setSignedIn(true)))} />;

  const parts = hash.replace(/^#\/?/, '').split('/').map(decodeURIComponent);
  let page;
  let section = 'prompts';
  if (parts[0] === 'providers') {
    section = 'providers';
    page = <ProvidersPage />;
  } else if (parts[0] === 'keys') {
    section = 'keys';
    page = <KeysPage />;
  } else if (parts[0] === 'spend') {
    section = 'spend';
    page = <SpendPage />;
  } else if (parts[0] === 'prompts' && parts[1]) {
    page = <PromptPage key={parts[1]} name={parts[1]} tab={parts[2] ?? 'versions'} />;
  } else {
    page = <PromptsPage />;
  }
  return (
    <>
      <a class="skip" href="#content">
        Skip to content
      </a>
      <header class="top">
        <span class="brand">promptmesh</span>
        <nav aria-label="Sections">
          <a href="#/prompts" aria-current={section === 'prompts' ? 'page' : undefined}>
            Prompts
          </a>
          <a href="#/providers" aria-current={section === 'providers' ? 'page' : undefined}>
            Providers
          </a>
          <a href="#/keys" aria-current={section === 'keys' ? 'page' : undefined}>
            Keys
          </a>
          <a href="#/spend" aria-current={section === 'spend' ? 'page' : undefined}>
            Spend
          </a>
        </nav>
        <button type="button" class="link" onClick={() => signOut('Signed out.')}>
          Sign out
        </button>
      </header>
      <main id="content" tabIndex={-1}>
        {page}
      </main>
    </>
  );
}

render(<App />, document.getElementById('app')!);
