import { buildConsole } from '../../scripts/build-console';

// The router serves the console from build/console/ (services/router/console.ts). Building it
// here, once per run, makes `npm test` on a clean clone work without a separate `npm run build`.
export default async function setup(): Promise<void> {
  await buildConsole();
}
