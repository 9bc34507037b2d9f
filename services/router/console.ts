/**
 * Serves the console (`/console/`), the web UI built by `npm run build` into `build/console/`
 * (sources in `console/`). The assets are public: they hold no data; everything the console
 * shows comes from the API with the admin key the user signs in with.
 *
 * The files are read once at start and served from memory: only names in the build output
 * exist (no path is ever joined from the URL), hashed asset names are cached for a year
 * (`immutable`), `index.html` is revalidated every time (it names the current hashes). Every
 * answer carries a strict Content-Security-Policy (no inline script or style), `nosniff`,
 * `no-referrer` and `DENY` framing.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { extname, join, relative, resolve, sep } from 'node:path';
import type { FastifyInstance, FastifyReply } from 'fastify';
import { PATHS } from '../../contracts';
import { ApiError, notFound, type Logger } from '../kit';

/** The console's URL prefix on the router (and on the ingress). */
export const CONSOLE_PATH = PATHS.console;

/** The policy every console answer carries. */
export const CONSOLE_CSP =
  "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'; object-src 'none'";

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.txt': 'text/plain; charset=utf-8',
};

interface Asset {
  body: Buffer;
  type: string;
  etag: string;
  immutable: boolean;
}

/**
 * Where the built console is: `console/` beside the bundle in the image (`build/service.js`,
 * `build/console/`), `build/console/` of the repository when running from sources.
 */
export function defaultConsoleDir(): string {
  const beside = join(__dirname, 'console');
  if (existsSync(join(beside, 'index.html'))) return beside;
  return resolve(__dirname, '..', '..', 'build', 'console');
}

function walk(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? walk(path) : [path];
  });
}

/** Reads the built console into memory; undefined when it was not built. */
export function loadConsole(dir: string): Map<string, Asset> | undefined {
  if (!existsSync(join(dir, 'index.html'))) return undefined;
  const assets = new Map<string, Asset>();
  for (const file of walk(dir)) {
    const rel = relative(dir, file).split(sep).join('/');
    const body = readFileSync(file);
    assets.set(rel, {
      body,
      type: TYPES[extname(file)] ?? 'application/octet-stream',
      etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"`,
      // esbuild names bundles `<name>-<HASH>.<ext>` under assets/.
      immutable: rel.startsWith('assets/') && /-[A-Z0-9]{8,}\.[a-z]+$/.test(rel),
    });
  }
  return assets;
}

function securityHeaders(reply: FastifyReply): void {
  reply.header('content-security-policy', CONSOLE_CSP);
  reply.header('x-content-type-options', 'nosniff');
  reply.header('referrer-policy', 'no-referrer');
  reply.header('x-frame-options', 'DENY');
  reply.header('cross-origin-opener-policy', 'same-origin');
}

/** Options of {@link consoleRoutes}. */
export interface ConsoleRoutesOptions {
  /** The built console. @default {@link defaultConsoleDir} */
  dir?: string;
  logger: Logger;
}

/**
 * `GET /console` (redirect to `/console/`), `GET /console/` and `GET /console/*`: public, no API key (the
 * routes carry `config: { public: true }` for the auth layer). Without a build, 503 naming the
 * command that makes it.
 */
export function consoleRoutes(options: ConsoleRoutesOptions) {
  const dir = options.dir ?? defaultConsoleDir();
  const assets = loadConsole(dir);
  if (!assets) options.logger.warn({ dir }, 'console: no build found; /console/ answers 503 until `npm run build` made it');

  return async (app: FastifyInstance) => {
    const routeConfig = { config: { public: true } };


    const serve = async (path: string, ifNoneMatch: string | undefined, reply: FastifyReply) => {
      securityHeaders(reply);
      if (!assets) {
        throw new ApiError({ status: 503, type: 'service_unavailable', message: `the console is not built: run npm run build (looked in ${dir})`, code: 'console_not_built' });
      }
      const asset = assets.get(path === '' ? 'index.html' : path);
      if (!asset) throw notFound(`no console file ${CONSOLE_PATH}${path}`, 'file_not_found');
      reply.header('content-type', asset.type);
      reply.header('etag', asset.etag);
      reply.header('cache-control', asset.immutable ? 'public, max-age=31536000, immutable' : 'no-cache');
      if (ifNoneMatch === asset.etag) return reply.code(304).send();
      return reply.send(asset.body);
    };

    // The router ignores trailing slashes: this route gets both `/console` and `/console/`. The
    // page's relative asset URLs need the slash, so `/console` is sent there (the query kept).
    app.get(CONSOLE_PATH.slice(0, -1), routeConfig, async (request, reply) => {
      const path = request.url.split('?')[0]!;
      if (path.endsWith('/')) return serve('', request.headers['if-none-match'], reply);
      securityHeaders(reply);
      return reply.code(308).header('location', `${CONSOLE_PATH}${request.url.slice(path.length)}`).send();
    });
    app.get<{ Params: { '*': string } }>(`${CONSOLE_PATH}*`, routeConfig, async (request, reply) =>
      serve(request.params['*'], request.headers['if-none-match'], reply),
    );
  };
}
