import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError } from '../kit';
import { inProcessPeers, wireMesh } from './wiring';

describe('wireMesh', () => {
  let server: Server;
  let url: string;
  const seen: string[] = [];
  beforeAll(async () => {
    // One peer for all three: /healthz answers 200, /readyz 503, so readiness and degradation
    // are told apart.
    server = createServer((req, res) => {
      seen.push(req.url ?? '');
      res.statusCode = req.url === '/healthz' ? 200 : 503;
      res.end('{}');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    await new Promise((resolve) => server.close(resolve));
  });

  it('names the first peer URL that is missing', () => {
    expect(() => wireMesh({ templatesUrl: undefined, contextUrl: url, llmUrl: url })).toThrow(ConfigError);
    expect(() => wireMesh({ templatesUrl: undefined, contextUrl: url, llmUrl: url })).toThrow(/TEMPLATES_URL/);
    expect(() => wireMesh({ templatesUrl: url, contextUrl: undefined, llmUrl: url })).toThrow(/CONTEXT_URL/);
    expect(() => wireMesh({ templatesUrl: url, contextUrl: url, llmUrl: undefined })).toThrow(/LLM_URL/);
  });

  it('is ready when llm answers, and degrades on templates and context', async () => {
    const wiring = wireMesh({ templatesUrl: url, contextUrl: url, llmUrl: url });
    try {
      expect(Object.keys(wiring.readiness)).toEqual(['llm']);
      await wiring.readiness.llm!();
      expect(Object.keys(wiring.degradations).sort()).toEqual(['context', 'templates']);
      await expect(wiring.degradations.templates!()).rejects.toThrow('templates /readyz answered 503');
      await expect(wiring.degradations.context!()).rejects.toThrow('context /readyz answered 503');
      expect(seen).toEqual(['/healthz', '/readyz', '/readyz']);
      expect(wiring.onTemplateChange).toBeUndefined();
    } finally {
      await wiring.clients.close();
    }
  });
});

describe('inProcessPeers', () => {
  it('is the in-process layout only when all three peers are there', () => {
    const peer = { name: 'x', core: {}, routes: async () => {} } as never;
    expect(inProcessPeers(new Map([['templates', peer], ['context', peer]]))).toBeUndefined();
    expect(inProcessPeers(new Map([['templates', peer], ['context', peer], ['llm', peer]]))).toBeDefined();
  });
});
