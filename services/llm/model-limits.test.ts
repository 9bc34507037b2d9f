// What the llm service knows of models it is not told about: each family's max output at its
// boundary, for OpenAI and Anthropic names, Bedrock model IDs, inference profiles and ARNs, and
// Gemini names on Vertex AI.
import { describe, expect, it } from 'vitest';
import { knownModel, maxOutputTokensOf } from './model-limits';

describe('max output of known models', () => {
  it.each([
    // Claude on Bedrock: model ID, each inference-profile prefix, a foundation-model and a profile ARN
    ['anthropic.claude-3-5-haiku-20241022-v1:0', 8_192],
    ['us.anthropic.claude-sonnet-4-20250514-v1:0', 64_000],
    ['eu.anthropic.claude-3-7-sonnet-20250219-v1:0', 64_000],
    ['apac.anthropic.claude-3-haiku-20240307-v1:0', 4_096],
    ['global.anthropic.claude-sonnet-4-5-20250929-v1:0', 64_000],
    ['us.anthropic.claude-opus-4-1-20250805-v1:0', 32_000],
    ['arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-haiku-4-5-20251001-v1:0', 64_000],
    ['arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-opus-4-5-20251101-v1:0', 64_000],
    // Bedrock's own families, new versions matched by family
    ['amazon.nova-micro-v1:0', 10_000],
    ['us.amazon.nova-pro-v1:0', 10_000],
    ['amazon.nova-lite-v2:0', 10_000],
    ['us.amazon.nova-premier-v1:0', 32_000],
    ['global.amazon.nova-2-lite-v1:0', 65_536],
    ['meta.llama3-1-70b-instruct-v1:0', 2_048],
    ['us.meta.llama3-3-70b-instruct-v1:0', 2_048],
    ['mistral.mistral-large-2407-v1:0', 8_192],
    ['mistral.mixtral-8x7b-instruct-v0:1', 4_096],
    ['mistral.mistral-7b-instruct-v0:2', 8_192],
    // Gemini, by name or Vertex AI resource name
    ['gemini-2.5-flash', 65_536],
    ['gemini-2.5-flash-lite-preview-06-17', 65_536],
    ['gemini-2.5-flash-image', 32_768],
    ['publishers/google/models/gemini-2.5-pro', 65_536],
    ['gemini-2.0-flash-001', 8_192],
    ['gemini-3-pro-preview', 65_536],
  ])('%s: %i', (model, max) => {
    expect(maxOutputTokensOf(undefined, model)).toBe(max);
  });

  it('knows nothing of families it has no figure for, and a family never claims a longer name', () => {
    for (const model of ['us.meta.llama4-scout-17b-instruct-v1:0', 'amazon.nova-2-pro-v1:0', 'mistral.pixtral-large-2502-v1:0', 'amazon.titan-text-express-v1', 'arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/a1b2c3', 'gemini-2.50-flash', 'novel.anthropic.claude-sonnet-4-x']) {
      expect(knownModel(model), model).toBeUndefined();
    }
    expect(knownModel('amazon.nova-lite-v1:0')).not.toBe(knownModel('amazon.nova-2-lite-v1:0'));
  });

  it('lets the providers file win', () => {
    expect(maxOutputTokensOf({ maxOutputTokens: { 'us.amazon.nova-pro-v1:0': 5_000 } }, 'us.amazon.nova-pro-v1:0')).toBe(5_000);
  });
});
