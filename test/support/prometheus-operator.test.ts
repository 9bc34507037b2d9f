import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { endpointsRoleMetaLabels, scrapeConfigsFor, serviceMonitorRelabelings, type ServiceMonitorObject } from './prometheus-operator';

describe('the operator scrape config generator', () => {
  it("produces the operator's own output for its TestPodTargetLabels case (golden file from its repository)", () => {
    const golden = parse(readFileSync(join(__dirname, 'operator-golden', 'PodTargetLabels.golden'), 'utf8'));
    const expected = golden.scrape_configs[0];
    const sm: ServiceMonitorObject = {
      metadata: { name: 'testservicemonitor1', namespace: 'default' },
      spec: { podTargetLabels: ['example', 'env'], endpoints: [{ port: 'web', interval: '30s' }] },
    };
    expect(serviceMonitorRelabelings(sm, 0)).toEqual(expected.relabel_configs);
    const { scrapeConfigs } = scrapeConfigsFor([sm], [], { fileSdPath: () => '/tmp/x.json' });
    expect(scrapeConfigs[0]).toMatchObject({ job_name: expected.job_name, honor_labels: expected.honor_labels, scrape_interval: expected.scrape_interval });
  });

  it('keeps Services by matchLabels (sorted, present and equal), takes job from jobLabel after the Service name', () => {
    const sm: ServiceMonitorObject = {
      metadata: { name: 'router', namespace: 'pm' },
      spec: { selector: { matchLabels: { 'b.io/x': 'y', a: 'z' } }, jobLabel: 'app.kubernetes.io/component', endpoints: [{ port: 'http-metrics' }] },
    };
    const r = serviceMonitorRelabelings(sm, 0, { shard: 0 });
    expect(r[1]).toEqual({ action: 'keep', source_labels: ['__meta_kubernetes_service_label_a', '__meta_kubernetes_service_labelpresent_a'], regex: '(z);true' });
    expect(r[2]).toEqual({ action: 'keep', source_labels: ['__meta_kubernetes_service_label_b_io_x', '__meta_kubernetes_service_labelpresent_b_io_x'], regex: '(y);true' });
    const jobRules = r.filter((x) => x.target_label === 'job');
    expect(jobRules).toEqual([
      { source_labels: ['__meta_kubernetes_service_name'], target_label: 'job', replacement: '${1}' },
      { source_labels: ['__meta_kubernetes_service_label_app_kubernetes_io_component'], target_label: 'job', regex: '(.+)', replacement: '${1}' },
    ]);
    expect(r.at(-1)).toEqual({ source_labels: ['__tmp_hash', '__tmp_disable_sharding'], regex: '0;|.+;.+', action: 'keep' });
  });

  it('gives an endpoint the meta labels of the endpoints role; container labels only for a declared port', () => {
    const base = {
      service: { name: 'router-metrics', namespace: 'pm', labels: { 'app.kubernetes.io/component': 'router' }, ports: [{ name: 'http-metrics', port: 15020, targetPort: 15020 }] },
      pod: { name: 'router-stable-abc', labels: { track: 'stable' }, containers: [{ name: 'router', ports: [{ name: 'http', containerPort: 8080 }] }] },
      portName: 'http-metrics',
      address: '127.0.0.1:1234',
    };
    const meta = endpointsRoleMetaLabels(base);
    expect(meta).toMatchObject({
      __meta_kubernetes_namespace: 'pm',
      __meta_kubernetes_service_name: 'router-metrics',
      __meta_kubernetes_service_label_app_kubernetes_io_component: 'router',
      __meta_kubernetes_service_labelpresent_app_kubernetes_io_component: 'true',
      __meta_kubernetes_endpoint_port_name: 'http-metrics',
      __meta_kubernetes_endpoint_address_target_kind: 'Pod',
      __meta_kubernetes_pod_label_track: 'stable',
      __meta_kubernetes_pod_phase: 'Running',
    });
    expect(meta.__meta_kubernetes_pod_container_name).toBeUndefined();
    const app = endpointsRoleMetaLabels({ ...base, service: { ...base.service, ports: [{ name: 'http', port: 8080, targetPort: 'http' as unknown as number }] }, portName: 'http' });
    expect(app.__meta_kubernetes_pod_container_name).toBe('router');
  });
});
