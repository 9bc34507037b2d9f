import { describe, expect, it } from 'vitest';
import { embeddingInputs, misspeltChatField, unknownChatFields } from './index';

describe('unknown request fields', () => {
  it('lists the fields neither OpenAI nor promptmesh knows', () => {
    expect(unknownChatFields({ model: 'm', messages: [], temperature: 0, session_id: 's', cache: true, top_k: 5, chat_template_kwargs: {}, skip: undefined })).toEqual([
      'top_k',
      'chat_template_kwargs',
    ]);
  });

  it('names the known field a slip of the keyboard away, and leaves short provider fields alone', () => {
    expect(misspeltChatField('sesion_id')).toBe('session_id');
    expect(misspeltChatField('temprature')).toBe('temperature');
    expect(misspeltChatField('temperatrue')).toBe('temperature');
    expect(misspeltChatField('max_tokenss')).toBe('max_tokens');
    expect(misspeltChatField('top_k')).toBeUndefined();
    expect(misspeltChatField('min_p')).toBeUndefined();
    expect(misspeltChatField('repetition_penalty')).toBeUndefined();
    expect(misspeltChatField('chat_template_kwargs')).toBeUndefined();
  });
});

describe('embedding inputs', () => {
  it('reads every input shape as a list', () => {
    expect(embeddingInputs('a')).toEqual(['a']);
    expect(embeddingInputs(['a', 'b'])).toEqual(['a', 'b']);
    expect(embeddingInputs([1, 2])).toEqual([[1, 2]]);
    expect(embeddingInputs([[1], [2, 3]])).toEqual([[1], [2, 3]]);
  });
});
