import { App, Chart } from 'cdk8s';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { TEST_PG_ADMIN_URL, createTestDatabase } from '../../test/support/pg';
import { ENV } from '../../contracts';
import { validateManifests } from '../../test/support/k8s-validate';
import { DEFAULT_POSTGRES_EXPORTER_IMAGE, DEFAULT_POSTGRES_IMAGE, Postgres, type PostgresProps } from './postgres';
import { expectRestricted, podSpecs, resolveEnv } from '../../test/support/data-store-manifests';

function synth(props: PostgresProps = {}): { pg: Postgres; objects: any[] } {
  const app = new App();
  const chart = new Chart(app, 'test', { namespace: 'pm' });
  const pg = new Postgres(chart, 'postgres', props);
  return { pg, objects: chart.toJson() };
}

const byKind = (objects: any[], kind: string) => objects.filter((o) => o.kind === kind);

describe('Postgres construct', () => {
  it('in-cluster: StatefulSet with PVC, PGDATA under the volume, pinned images, valid against the schemas', () => {
    const { pg, objects } = synth({ storageClass: 'gp3', parameters: { max_connections: '300' } });
    expect(validateManifests(objects)).toEqual([]);
    expect(objects.map((o) => o.kind).sort()).toEqual(['PodDisruptionBudget', 'Service', 'Service', 'ServiceAccount', 'ServiceMonitor', 'StatefulSet']);
    const [sts] = byKind(objects, 'StatefulSet');
    expect(sts.spec.replicas).toBe(1);
    const [postgres, exporter] = sts.spec.template.spec.containers;
    expect(postgres.image).toBe(DEFAULT_POSTGRES_IMAGE);
    expect(exporter.image).toBe(DEFAULT_POSTGRES_EXPORTER_IMAGE);
    expect(postgres.image).toMatch(/^postgres:1[78]\.\d+-/);
    const dataMount = postgres.volumeMounts.find((m: any) => m.name === 'data').mountPath;
    const pgdata = postgres.env.find((e: any) => e.name === 'PGDATA').value;
    expect(pgdata.startsWith(`${dataMount}/`)).toBe(true);
    expect(postgres.volumeMounts.map((m: any) => m.mountPath)).toContain('/var/run/postgresql');
    expect(sts.spec.template.spec.securityContext).toMatchObject({ runAsUser: 999, runAsGroup: 999, fsGroup: 999 });
    expect(sts.spec.volumeClaimTemplates[0].spec).toMatchObject({ storageClassName: 'gp3', resources: { requests: { storage: '20Gi' } } });
    expect(postgres.args).toEqual(expect.arrayContaining(['-c', 'max_connections=300', '-c', 'shared_buffers=128MB']));
    for (const probe of ['startupProbe', 'readinessProbe', 'livenessProbe']) {
      expect(postgres[probe].exec.command.slice(0, 1), probe).toEqual(['pg_isready']);
    }
    expect(pg.host).toBe('postgres.pm.svc.cluster.local');
    expect(pg.selectorLabels).toEqual(sts.spec.selector.matchLabels);
  });

  it('in-cluster: DATABASE_URL composed from the password Secret by reference', () => {
    const { pg } = synth({ passwordSecret: { name: 'db', key: 'pw' }, user: 'app', database: 'prompts' });
    const env = pg.clientEnv();
    expect(env[0]).toEqual({ name: 'PROMPTMESH_POSTGRES_PASSWORD', valueFrom: { secretKeyRef: { name: 'db', key: 'pw', optional: false } } });
    expect(env[1]).toEqual({ name: ENV.databaseUrl, value: 'postgres://app:$(PROMPTMESH_POSTGRES_PASSWORD)@postgres.pm.svc.cluster.local:5432/prompts' });
    // With a URL Secret (as the Pulumi program makes), services read it directly.
    const withUrl = synth({ databaseUrlSecret: { name: 'db-url', key: 'url' } }).pg.clientEnv();
    expect(withUrl).toEqual([{ name: ENV.databaseUrl, valueFrom: { secretKeyRef: { name: 'db-url', key: 'url', optional: false } } }]);
  });

  it('external: no objects at all, DATABASE_URL from the Secret', () => {
    const { pg, objects } = synth({ mode: 'external' });
    expect(objects).toEqual([]);
    expect(pg.clientEnv()).toEqual([
      { name: ENV.databaseUrl, valueFrom: { secretKeyRef: { name: 'postgres-url', key: 'DATABASE_URL', optional: false } } },
    ]);
    expect(pg.host).toBeUndefined();
    expect(pg.selectorLabels).toBeUndefined();
    const custom = synth({ mode: 'external', databaseUrlSecret: { name: 'rds', key: 'url' } }).pg;
    expect(custom.databaseUrlSecret).toEqual({ name: 'rds', key: 'url' });
  });

  it('restricted pods, requests and limits, a PDB that allows a disruption, a ServiceMonitor on the client Service', () => {
    const { objects } = synth({ serviceMonitorLabels: { release: 'prom' } });
    for (const spec of podSpecs(objects)) expectRestricted(spec);
    const [pdb] = byKind(objects, 'PodDisruptionBudget');
    expect(pdb.spec.maxUnavailable).toBe(1);
    const [sm] = byKind(objects, 'ServiceMonitor');
    expect(sm.metadata.labels.release).toBe('prom');
    const matched = byKind(objects, 'Service').filter((s) =>
      Object.entries(sm.spec.selector.matchLabels).every(([k, v]) => s.metadata.labels[k] === v),
    );
    expect(matched.map((s) => s.metadata.name)).toEqual(['postgres']);
    expect(matched[0].spec.ports.map((p: any) => p.name)).toContain(sm.spec.endpoints[0].port);
  });

  it('no Secret objects and no password value in any manifest', () => {
    const { objects } = synth();
    expect(byKind(objects, 'Secret')).toHaveLength(0);
    for (const w of byKind(objects, 'StatefulSet')) {
      for (const c of w.spec.template.spec.containers) {
        for (const e of c.env ?? []) {
          if (/PASS/i.test(e.name)) {
            expect(e.value, `${c.name} ${e.name}`).toBeUndefined();
            expect(e.valueFrom.secretKeyRef).toEqual({ name: 'postgres-auth', key: 'password', optional: false });
          }
        }
      }
    }
  });

  it('rejects bad props with errors naming the prop and the allowed values', () => {
    const bad: Array<[PostgresProps, RegExp]> = [
      [{ mode: 'rds' as any }, /'mode' must be one of in-cluster, external/],
      [{ image: 'postgres' }, /'image' must be an image with an exact tag/],
      [{ user: 'postgres' }, /'user' must not be 'postgres'/],
      [{ database: 'My-DB' }, /'database' must be a lowercase SQL identifier/],
      [{ parameters: { 'max connections': '1' } }, /'parameters' keys must be PostgreSQL setting names/],
      [{ parameters: { work_mem: "4MB'; DROP" } }, /'parameters.work_mem' must be a plain value/],
      [
        { resources: { requests: { cpu: '1', memory: '2Gi' }, limits: { cpu: '1', memory: '1Gi' } } },
        /Postgres: 'resources.requests.memory' \(2Gi\) must be less than or equal to 'resources.limits.memory'/,
      ],
      [{ mode: 'external', storageSize: '10Gi' }, /'storageSize' applies only to mode 'in-cluster'/],
      [{ mode: 'external', databaseUrlSecret: { name: 'Bad_Name', key: 'url' } }, /'databaseUrlSecret.name' must be a lowercase RFC 1123 label/],
    ];
    for (const [props, message] of bad) expect(() => synth(props), JSON.stringify(props)).toThrow(message);
  });

  it('matches the snapshot', () => {
    expect(synth().objects).toMatchSnapshot();
  });

  it('against a real PostgreSQL: every server parameter exists; the composed DATABASE_URL reaches the role and database', async () => {
    const db = await createTestDatabase('k8s_url');
    const role = `pm_k8s_${randomBytes(4).toString('hex')}`;
    const password = randomBytes(16).toString('hex');
    const admin = new pg.Client({ connectionString: TEST_PG_ADMIN_URL });
    await admin.connect();
    try {
      const { objects } = synth();
      const args: string[] = byKind(objects, 'StatefulSet')[0].spec.template.spec.containers[0].args;
      const names = args.filter((_, i) => i % 2 === 1).map((a) => a.split('=')[0]);
      const known = await admin.query('SELECT name FROM pg_settings WHERE name = ANY($1)', [names]);
      expect(known.rows.map((r) => r.name).sort()).toEqual([...names].sort());

      await admin.query(`CREATE ROLE ${role} LOGIN PASSWORD '${password}'`);
      const { pg: construct } = synth({ user: role, database: db.name });
      const env = resolveEnv(construct.clientEnv() as any, { 'postgres-auth': { password } });
      const url = env[ENV.databaseUrl]!.replace(`${construct.host}:5432`, '127.0.0.1:5432');
      expect(url).toBe(`postgres://${role}:${password}@127.0.0.1:5432/${db.name}`);
      // The local server trusts every login, so this proves the URL's shape (role, database), not the password check.
      const client = new pg.Client({ connectionString: url });
      await client.connect();
      try {
        const who = await client.query('SELECT current_user, current_database()');
        expect(who.rows[0]).toEqual({ current_user: role, current_database: db.name });
      } finally {
        await client.end();
      }
    } finally {
      await db.drop();
      await admin.query(`DROP ROLE IF EXISTS ${role}`);
      await admin.end();
    }
  });
});
