/**
 * The OpenAI Embeddings API on the wire: the request (router and llm alike), the answer, and
 * `encoding_format: base64`, which is applied once, at the edge of the llm service: adapters,
 * the cache and the pipeline only ever hold vectors as float arrays.
 */
import { Type, type Static } from 'typebox';
import { ErrorBodySchema } from '../kit/errors';

/** Most inputs one embeddings request may carry (OpenAI's own limit). */
export const MAX_EMBEDDING_INPUTS = 2048;
/** Most characters of one input string (well above any embedding model's context, below a memory problem). */
export const MAX_EMBEDDING_INPUT_CHARS = 1_000_000;
/** Most token ids of one pre-tokenized input. */
const MAX_EMBEDDING_INPUT_TOKENS = 100_000;

const TokenIds = Type.Array(Type.Integer({ minimum: 0 }), { minItems: 1, maxItems: MAX_EMBEDDING_INPUT_TOKENS });

/** The request of `POST /v1/embeddings`. Unknown fields are refused by name. */
export const EmbeddingsRequestSchema = Type.Object(
  {
    model: Type.String({ minLength: 1, maxLength: 256 }),
    /** One text, several texts, one token array or several token arrays; never empty. */
    input: Type.Union([
      Type.String({ minLength: 1, maxLength: MAX_EMBEDDING_INPUT_CHARS }),
      Type.Array(Type.String({ minLength: 1, maxLength: MAX_EMBEDDING_INPUT_CHARS }), { minItems: 1, maxItems: MAX_EMBEDDING_INPUTS }),
      TokenIds,
      Type.Array(TokenIds, { minItems: 1, maxItems: MAX_EMBEDDING_INPUTS }),
    ]),
    /** How vectors are written: float arrays, or base64 of little-endian float32. @default 'float' */
    encoding_format: Type.Optional(Type.Union([Type.Literal('float'), Type.Literal('base64')])),
    /** Fewer dimensions than the model's own (models that support it, e.g. text-embedding-3-*). */
    dimensions: Type.Optional(Type.Integer({ minimum: 1, maximum: 65_536 })),
    user: Type.Optional(Type.String({ maxLength: 256 })),
  },
  { additionalProperties: false },
);
/** An OpenAI Embeddings request. */
export type EmbeddingsRequest = Static<typeof EmbeddingsRequestSchema>;

/** One vector of an answer. */
export interface Embedding {
  object: 'embedding';
  index: number;
  embedding: number[];
}

/** An OpenAI Embeddings answer, vectors as float arrays (as adapters, the cache and the pipeline hold it). */
export interface EmbeddingsResponse {
  object: 'list';
  data: Embedding[];
  model: string;
  usage: { prompt_tokens: number; total_tokens: number; [extra: string]: unknown };
  [extra: string]: unknown;
}

/** An answer as the client gets it: vectors as floats or base64 strings, usage with the cost. */
export interface EncodedEmbeddingsResponse extends Omit<EmbeddingsResponse, 'data'> {
  data: Array<Omit<Embedding, 'embedding'> & { embedding: number[] | string }>;
}

/**
 * The response schemas of `POST /v1/embeddings` (router and llm). The list is written as
 * given (a vector is a long array: the fast serializer gains nothing on it), errors in the
 * OpenAI error shape.
 */
export const embeddingsResponseSchemas = {
  200: Type.Object({ object: Type.Optional(Type.String()), data: Type.Optional(Type.Array(Type.Unknown())), model: Type.Optional(Type.String()), usage: Type.Optional(Type.Unknown()) }, { additionalProperties: true }),
  '4xx': ErrorBodySchema,
  '5xx': ErrorBodySchema,
};

/** The inputs of a request as a list (one string or token array becomes a list of one). */
export function embeddingInputs(input: EmbeddingsRequest['input']): Array<string | number[]> {
  if (typeof input === 'string') return [input];
  if (input.length > 0 && typeof input[0] === 'number') return [input as number[]];
  return input as Array<string | number[]>;
}

/** A vector as OpenAI writes it for `encoding_format: base64`: the bytes of little-endian float32s. */
export function floatsToBase64(vector: readonly number[]): string {
  const buf = Buffer.allocUnsafe(vector.length * 4);
  for (let i = 0; i < vector.length; i++) buf.writeFloatLE(vector[i], i * 4);
  return buf.toString('base64');
}

/** The answer in the format the client asked for. */
export function encodeEmbeddings(response: EmbeddingsResponse, format: 'float' | 'base64' | undefined): EncodedEmbeddingsResponse {
  if (format !== 'base64') return response;
  return { ...response, data: response.data.map((d) => ({ ...d, embedding: floatsToBase64(d.embedding) })) };
}

/** The floats of a vector written as OpenAI's base64 (little-endian float32). */
export function base64ToFloats(text: string): number[] {
  const buf = Buffer.from(text, 'base64');
  if (buf.length % 4 !== 0) throw new Error('not a whole number of float32 values');
  const out = new Array<number>(buf.length / 4);
  for (let i = 0; i < out.length; i++) out[i] = buf.readFloatLE(i * 4);
  return out;
}

/** An answer with every vector as floats, whichever way each was written. */
export function decodeEmbeddings(response: EncodedEmbeddingsResponse): EmbeddingsResponse {
  return { ...(response as EmbeddingsResponse), data: response.data.map((d) => ({ ...d, embedding: typeof d.embedding === 'string' ? base64ToFloats(d.embedding) : d.embedding })) };
}
