/**
 * The embeddings shapes the agreed adapter interface names (issue 13 plan). Until issue 13a's
 * `services/openai/embeddings.ts` (the TypeBox schemas) is merged, these identical-shaped types
 * stand in; the merge switches the imports there and deletes this file.
 */

/** An OpenAI Embeddings API request (model already the provider's). */
export interface EmbeddingsRequest {
  model: string;
  input: string | string[] | number[] | number[][];
  encoding_format?: 'float' | 'base64';
  dimensions?: number;
  user?: string;
}

/** An OpenAI Embeddings API answer, vectors always as float arrays. */
export interface EmbeddingsResponse {
  object: 'list';
  data: { object: 'embedding'; index: number; embedding: number[] }[];
  model: string;
  usage: { prompt_tokens: number; total_tokens: number };
}
