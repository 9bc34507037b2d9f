/**
 * The environments' configuration agrees with what the services accept: the providers file each
 * environment ships passes the llm service's own parser (with the API keys the Secret provides).
 */
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { parseLlmConfig } from '../../services/llm/config';
import { ENVIRONMENTS } from '../../stacks/k8s/environments';
import { synthesize } from '../../stacks/k8s/synth';
import { TEST_IMAGE } from './manifests';

describe('environment configuration', () => {
  for (const env of ENVIRONMENTS) {
    it(`${env}: the providers file (if any) is valid for the llm service`, () => {
      const objects = synthesize({ env, images: TEST_IMAGE });
      const cm = objects.find((o) => o.kind === 'ConfigMap' && o.metadata.name === 'promptmesh-providers');
      const llm = objects.find((o) => o.kind === 'Deployment' && o.metadata.name === 'llm-stable').spec.template.spec.containers[0];
      const providersEnv = llm.env.find((e: any) => e.name === 'PROVIDERS_FILE');
      if (!cm) {
        // No providers file: llm runs its built-in echo provider.
        expect(providersEnv).toBeUndefined();
        return;
      }
      expect(providersEnv.value).toBe('/etc/promptmesh/providers/providers.yaml');
      const raw = parse(cm.data['providers.yaml']);
      const keys = raw.providers.map((p: any) => p.apiKeyEnv).filter(Boolean);
      const config = parseLlmConfig(raw, 'providers.yaml', Object.fromEntries(keys.map((k: string) => [k, 'from-the-secret'])));
      expect(config.providers.length).toBe(raw.providers.length);
      // Without the keys (the Secret missing), the service would refuse to start, naming the variable.
      expect(() => parseLlmConfig(raw, 'providers.yaml', {})).toThrow(new RegExp(keys[0]));
      expect(llm.envFrom).toEqual([{ secretRef: { name: 'promptmesh-provider-keys', optional: false } }]);
    });
  }
});
