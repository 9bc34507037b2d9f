import { Socket } from 'node:net';

// Tests need the local PostgreSQL and Redis. `npm test` starts them when they are down (its pretest
// step, scripts/test-prereqs.sh); here we only check, and fail at once with the command that starts them.
function reachable(host: string, port: number, timeoutMs = 2_000): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = new Socket();
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('error', () => done(false));
    socket.connect(port, host, () => done(true));
  });
}

export default async function setup(): Promise<void> {
  const missing: string[] = [];
  if (!(await reachable('127.0.0.1', 5432))) {
    missing.push(`PostgreSQL on 127.0.0.1:5432 is not reachable. Start it: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start  (npm test starts it: scripts/test-prereqs.sh)`);
  }
  if (!(await reachable('127.0.0.1', 6379))) {
    missing.push(`Redis on 127.0.0.1:6379 is not reachable. Start it: redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no`);
  }
  if (missing.length > 0) throw new Error(`test dependencies are down:\n- ${missing.join('\n- ')}`);
}
