import { describe, expect, it } from 'vitest';
import { validateManifests } from '../support/k8s-validate';
import { allOutputs, defaultChart } from './manifests';

describe('every synthesized object passes the Kubernetes 1.34+, Istio v1 and prometheus-operator schemas', () => {
  for (const [name, objects] of allOutputs()) {
    it(name, () => {
      expect(objects.length).toBeGreaterThan(40);
      expect(validateManifests(objects)).toEqual([]);
    });
  }

  it('would catch a misspelt field in the real output', () => {
    const objects = defaultChart();
    const deployment = structuredClone(objects.find((o) => o.kind === 'Deployment'));
    deployment.spec.template.spec.containers[0].readinesProbe = deployment.spec.template.spec.containers[0].readinessProbe;
    expect(validateManifests([deployment]).join('\n')).toMatch(/readinesProbe: unknown field/);
  });
});
