import { describe, expect, it } from 'vitest';
import { createApp } from './app';
import { ApiError } from './errors';
import { createLogger } from './logger';
import { createMetrics } from './metrics';
import { createTracing } from './tracing';
import { compileBodyCheck } from './validation';

const schema = {
  type: 'object',
  additionalProperties: false,
  required: ['content'],
  properties: {
    content: {
      anyOf: [
        { type: 'string', maxLength: 5 },
        { type: 'array', minItems: 1, items: { type: 'object', required: ['type'], properties: { type: { type: 'string' } } } },
        { type: 'null' },
      ],
    },
    n: { type: 'integer', minimum: 1 },
  },
};

/** What a check throws for `body`, as the error body a client reads. */
function refusal(check: (v: unknown) => unknown, body: unknown) {
  try {
    check(body);
  } catch (err) {
    expect(err).toBeInstanceOf(ApiError);
    return { status: (err as ApiError).statusCode, ...(err as ApiError).toBody().error };
  }
  return undefined;
}

const CASES: Array<[unknown, string, RegExp]> = [
  [{ content: 'hi', zz: 1 }, 'zz', /'zz' is not a known field/],
  [{}, 'content', /'content' is required/],
  [{ content: 'hi', n: 0 }, 'n', /'n' must be >= 1/],
  // anyOf: every branch failed on its type, so the types are listed.
  [{ content: 5 }, 'content', /'content' must be string, array or null/],
  // anyOf: the branch whose type matched says what is wrong with it.
  [{ content: 'too long' }, 'content', /'content' must NOT have more than 5 characters/],
  [{ content: [] }, 'content', /'content' must NOT have fewer than 1 items/],
  [{ content: [{ type: 7 }] }, 'content[0].type', /'content\[0\]\.type' must be string/],
];

describe('compileBodyCheck', () => {
  it('passes a valid body through', () => {
    expect(compileBodyCheck<{ content: string }>(schema)({ content: 'hi' })).toEqual({ content: 'hi' });
  });

  it('refuses each invalid body with the 400 a route with the same schema answers', async () => {
    const check = compileBodyCheck(schema);
    const app = createApp({ service: 'test', config: { bodyLimitBytes: 100_000 }, logger: createLogger('test', 'silent'), metrics: createMetrics({ defaultMetrics: false }), tracing: createTracing('test', undefined) });
    app.post('/check', { schema: { body: schema } }, async () => ({ ok: true }));
    try {
      for (const [body, param, message] of CASES) {
        const inProcess = refusal(check, body);
        expect(inProcess, JSON.stringify(body)).toMatchObject({ status: 400, param });
        expect(inProcess!.message).toMatch(message);
        const res = await app.inject({ method: 'POST', url: '/check', payload: body as object });
        expect(res.statusCode).toBe(400);
        expect(res.json().error).toEqual({ type: inProcess!.type, message: inProcess!.message, param: inProcess!.param, code: inProcess!.code });
      }
    } finally {
      await app.close();
    }
  });
});
