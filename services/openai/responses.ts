/**
 * The OpenAI Responses API as promptmesh sees it: passed through to providers that speak it, so
 * only what routing needs is checked (`model`, `stream`); every other field is the provider's
 * to judge, and its answer (JSON or its stream of typed events) reaches the client unchanged.
 */
import { Type, type Static } from 'typebox';

/** The request of `POST /v1/responses`: `model` and `stream` checked, the rest passed on. */
export const ResponsesRequestSchema = Type.Object(
  {
    model: Type.String({ minLength: 1, maxLength: 256 }),
    stream: Type.Optional(Type.Union([Type.Boolean(), Type.Null()])),
  },
  { additionalProperties: true },
);

/** A request passed through to a provider: its model resolved by routing, the rest as sent. */
export type PassthroughRequest = Static<typeof ResponsesRequestSchema> & { [field: string]: unknown };
