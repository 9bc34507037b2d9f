// The pins table (infra/versions.ts): every pin is exact, dated, and not past its end of support.
// This test is MEANT to start failing on the day a pin's support ends: bump the pin, not the test.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  allPins, CERT_MANAGER_CHART, DEFAULT_KUBERNETES_VERSION, IMAGES, ISTIO, KUBERNETES_RELEASES, NODE_IMAGE, PLATFORM_CHARTS, RDS_POSTGRES_MAJOR,
} from '../../infra/versions';

const today = new Date().toISOString().slice(0, 10);

describe('pins table', () => {
  const pins = allPins();

  it('lists every pin with a real date and a source', () => {
    expect(pins.length).toBeGreaterThan(20);
    for (const p of pins) {
      expect(p.endOfSupport, p.name).toMatch(/^\d{4}-\d{2}-\d{2}$/);
      expect(Number.isNaN(Date.parse(`${p.endOfSupport}T00:00:00Z`)), p.name).toBe(false);
      expect(p.source.length, p.name).toBeGreaterThan(10);
    }
  });

  it.each(pins.map((p) => [p.name, p] as const))('%s is still supported today', (_name, p) => {
    expect(today <= p.endOfSupport, `${p.name} ${p.version}: support ended ${p.endOfSupport} (${p.source}); bump it in infra/versions.ts`).toBe(true);
  });

  it('pins exact versions: no ranges, no latest', () => {
    for (const c of [...Object.values(PLATFORM_CHARTS), CERT_MANAGER_CHART]) expect(c.version, c.chart).toMatch(/^v?\d+\.\d+\.\d+$/);
    for (const i of [...Object.values(IMAGES), NODE_IMAGE]) expect(i.image).toMatch(/:[vV]?\d+\.\d+(\.\d+)?(-[a-z]+)*$/);
    for (const r of Object.values(KUBERNETES_RELEASES)) {
      for (const build of Object.values(r.eksAddons)) expect(build).toMatch(/^v\d+\.\d+\.\d+-eksbuild\.\d+$/);
    }
  });

  it('resolves the autoscaler and kube-proxy per Kubernetes minor, and Istio supports every accepted minor', () => {
    expect(Object.keys(KUBERNETES_RELEASES)).toEqual(['1.35', '1.36']);
    expect(DEFAULT_KUBERNETES_VERSION).toBe('1.35');
    for (const [minor, r] of Object.entries(KUBERNETES_RELEASES)) {
      expect(r.clusterAutoscalerImageTag.replace(/^v(\d+\.\d+)\..*$/, '$1'), minor).toBe(minor);
      expect(r.eksAddons['kube-proxy'].replace(/^v(\d+\.\d+)\..*$/, '$1'), minor).toBe(minor);
      expect(ISTIO.kubernetesVersions as readonly string[]).toContain(minor);
    }
  });

  it('names the RDS engine by its major only, the same major as the in-cluster PostgreSQL', () => {
    expect(RDS_POSTGRES_MAJOR.version).toMatch(/^\d+$/);
    expect(IMAGES.postgres.image).toMatch(new RegExp(`^postgres:${RDS_POSTGRES_MAJOR.version}\\.`));
    expect(IMAGES.redis.image).toMatch(/^redis:8\./);
  });

  it('is the Dockerfile base image', () => {
    const dockerfile = readFileSync(join(__dirname, '..', '..', 'Dockerfile'), 'utf8');
    expect(dockerfile).toContain(`ARG NODE_IMAGE=${NODE_IMAGE.image}\n`);
  });
});
