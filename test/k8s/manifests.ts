/** Synthesized outputs the k8s tests check: the default chart and every environment. */
import { Testing } from 'cdk8s';
import { PromptSystem } from '../../infra/k8s/index';
import { ENVIRONMENTS } from '../../stacks/k8s/environments';
import { synthesize } from '../../stacks/k8s/synth';

/** The image every test output uses. */
export const TEST_IMAGE = 'ghcr.io/promptmesh/promptmesh:0.1.0';

/** `new PromptSystem(app, 'promptmesh', { images })`: the production-shaped defaults. */
export function defaultChart(): any[] {
  const app = Testing.app();
  return Testing.synth(new PromptSystem(app, 'promptmesh', { images: TEST_IMAGE }));
}

/** Every output to check, by a readable name. */
export function allOutputs(): Array<[string, any[]]> {
  return [['default chart', defaultChart()], ...ENVIRONMENTS.map((env): [string, any[]] => [`env ${env}`, synthesize({ env, images: TEST_IMAGE })])];
}
