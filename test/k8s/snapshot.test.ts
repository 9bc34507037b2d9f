import { expect, it } from 'vitest';
import { stringify } from 'yaml';
import { defaultChart } from './manifests';

// The production-shaped default chart, as YAML, reviewed in diffs. Nothing in it may vary
// between runs (no timestamps, no random names). Update with `npx vitest run test/k8s/snapshot.test.ts --update`.
it('default chart matches the committed snapshot', async () => {
  const objects = defaultChart();
  const yaml = objects.map((o) => stringify(o, { lineWidth: 0 })).join('---\n');
  await expect(yaml).toMatchFileSnapshot('./__snapshots__/default-chart.yaml');
});

it('synthesizes identically twice', () => {
  expect(JSON.stringify(defaultChart())).toBe(JSON.stringify(defaultChart()));
});
