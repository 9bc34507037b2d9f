/**
 * Canonical (OpenAI-shaped) requests to Bedrock Converse input, and Converse answers and
 * ConverseStream events back. What Converse cannot express is refused with a 400 naming the field
 * (see docs/llm.md "Bedrock"): `n` > 1, `seed`, penalties, `logit_bias`, `logprobs`,
 * `parallel_tool_calls: false`, `tool_choice: 'none'` once tools were used, images by http URL.
 */
import { alternatingTurns } from '../../../anthropic';
import type { ChatCompletion, ChatCompletionChunk, ChatMessage, ChatRequest, ContentPart, FinishReason, ThinkingBlock, ToolCall, Usage } from '../../../openai';
import { maxOutputTokensOf } from '../../model-limits';
import { ProviderError, type ProviderConfig } from '../../types';
import { dataUrl, functionTools, imageUrlOf, refuse, refuseUnhandled, responseFormatOf, stopSequences, textOnlyOf, thinkingBudgetOf, toolArguments, toolChoiceOf } from '../translation';

type Block = Record<string, unknown>;

/** Canonical thinking blocks as Converse `reasoningContent` blocks (signature and redacted bytes as they came). */
function reasoningBlocks(blocks: readonly ThinkingBlock[] | undefined): Block[] {
  return (blocks ?? []).map((b) =>
    b.type === 'thinking' ? { reasoningContent: { reasoningText: { text: b.thinking, signature: b.signature } } } : { reasoningContent: { redactedContent: Buffer.from(b.data, 'base64') } },
  );
}

/** A Converse `reasoningContent` (answer block or stream delta) as a canonical thinking block, when it is whole. */
function thinkingOfReasoning(r: any): ThinkingBlock | undefined {
  if (typeof r?.reasoningText?.text === 'string' && typeof r.reasoningText.signature === 'string') return { type: 'thinking', thinking: r.reasoningText.text, signature: r.reasoningText.signature };
  if (r?.redactedContent instanceof Uint8Array || typeof r?.redactedContent === 'string') return { type: 'redacted_thinking', data: Buffer.from(r.redactedContent).toString('base64') };
  return undefined;
}

/** Request fields the Bedrock translation reads (every other one with a value is refused). */
const HANDLED = new Set([
  'model',
  'messages',
  'stream',
  'stream_options',
  'temperature',
  'top_p',
  'top_k',
  'max_tokens',
  'max_completion_tokens',
  'stop',
  'tools',
  'tool_choice',
  'response_format',
  'reasoning_effort',
  'thinking',
  'user',
  'metadata',
  'service_tier',
]);

const IMAGE_FORMATS: Record<string, string> = { 'image/png': 'png', 'image/jpeg': 'jpeg', 'image/jpg': 'jpeg', 'image/gif': 'gif', 'image/webp': 'webp' };
/** Bedrock's requestMetadata keys and values (1-256 characters of this set). */
const METADATA_VALUE = /^[a-zA-Z0-9\s:_@$#=/+,.-]{1,256}$/;

/** Whether a model ID (or inference profile or ARN) is an Anthropic Claude model. */
export function isClaude(modelId: string): boolean {
  return /(^|[.:/])anthropic\.claude/.test(modelId);
}

/** The max output of a Claude model on Bedrock: the providers file's, else its family's (`anthropic.claude-3-5-haiku-...:0` is a `claude-3-5-haiku`, model-limits.ts). */
function claudeMaxOutput(provider: ProviderConfig | undefined, modelId: string): number | undefined {
  return maxOutputTokensOf(provider, modelId);
}

const cachePoint = (holder: unknown): Block[] => ((holder as { cache_control?: unknown } | null)?.cache_control ? [{ cachePoint: { type: 'default' } }] : []);

function partBlocks(part: ContentPart, field: string): Block[] {
  if (part.type === 'text') return [{ text: part.text ?? '' }, ...cachePoint(part)];
  if (part.type === 'image_url') {
    const url = imageUrlOf(part);
    const data = url ? dataUrl(url) : undefined;
    if (!data) throw refuse(`${field}.image_url`, 'Bedrock takes images as data: URLs (base64) only');
    const format = IMAGE_FORMATS[data.mediaType];
    if (!format) throw refuse(`${field}.image_url`, `image type '${data.mediaType}' is not supported by Bedrock (png, jpeg, gif, webp)`);
    return [{ image: { format, source: { bytes: Buffer.from(data.base64, 'base64') } } }, ...cachePoint(part)];
  }
  throw refuse(`${field}.type`, `content part type '${part.type}' is not supported by bedrock providers`);
}

function contentBlocks(content: ChatMessage['content'], field: string): Block[] {
  if (content === null || content === undefined) return [];
  if (typeof content === 'string') return content.length > 0 ? [{ text: content }] : [];
  return content.flatMap((p, i) => partBlocks(p, `${field}[${i}]`));
}

/** The Converse input (without `modelId`) for a canonical request. */
export function toConverseInput(request: ChatRequest, provider?: ProviderConfig): Record<string, unknown> {
  refuseUnhandled(request, HANDLED, 'bedrock', { n: [1], parallel_tool_calls: [true] });
  const claude = isClaude(request.model);
  const system: Block[] = [];
  let toolBlocksUsed = false;
  const messages = alternatingTurns<Block>(request.messages, {
    system(m, field) {
      const text = textOnlyOf(m.content, `${field}.content`);
      if (text) system.push({ text }, ...cachePoint(m));
    },
    user: (m, field) => [...contentBlocks(m.content, `${field}.content`), ...cachePoint(m)],
    assistant(m, field) {
      // Claude's thinking goes back first and unchanged (Converse reasoningContent), or Claude
      // refuses a tool-use continuation.
      const blocks = [...reasoningBlocks(m.thinking_blocks), ...contentBlocks(m.content, `${field}.content`)];
      for (const [j, tc] of (m.tool_calls ?? []).entries()) {
        toolBlocksUsed = true;
        blocks.push({ toolUse: { toolUseId: tc.id, name: tc.function.name, input: toolArguments(tc.function.arguments, `${field}.tool_calls[${j}].function.arguments`) } });
      }
      return [...blocks, ...cachePoint(m)];
    },
    tool(m, field) {
      toolBlocksUsed = true;
      return [{ toolResult: { toolUseId: m.tool_call_id ?? '', content: [{ text: textOnlyOf(m.content, `${field}.content`) }] } }, ...cachePoint(m)];
    },
    unknownRole: (m, field) => refuse(`${field}.role`, `'${String(m.role)}' is not supported`),
  });
  if (messages.length === 0) throw refuse('messages', 'Bedrock needs at least one user or assistant message');

  const input: Record<string, unknown> = { messages };
  if (system.length > 0) input.system = system;
  const inference: Record<string, unknown> = {};
  let maxTokens = request.max_completion_tokens ?? request.max_tokens ?? undefined;
  if (typeof request.temperature === 'number') inference.temperature = request.temperature;
  if (typeof request.top_p === 'number') inference.topP = request.top_p;
  const stops = stopSequences(request);
  if (stops) inference.stopSequences = stops;

  const additional: Record<string, unknown> = {};
  if (request.top_k !== undefined && request.top_k !== null) {
    if (!claude) throw refuse('top_k', 'is supported on Bedrock for Anthropic Claude models only');
    if (!(Number.isInteger(request.top_k) && (request.top_k as number) >= 0)) throw refuse('top_k', 'must be an integer >= 0');
    additional.top_k = request.top_k;
  }

  const budget = thinkingBudgetOf(request);
  const outputConfig: Record<string, unknown> = {};
  if (budget !== undefined && budget > 0) {
    if (claude) {
      // Claude's thinking budget counts inside max_tokens, which must exceed it.
      const field = request.max_completion_tokens !== undefined && request.max_completion_tokens !== null ? 'max_completion_tokens' : 'max_tokens';
      if (maxTokens !== undefined && maxTokens <= budget) throw refuse(field, `must be greater than the thinking budget (${budget} tokens)`);
      maxTokens ??= Math.max(budget + 1024, claudeMaxOutput(provider, request.model) ?? 0);
      additional.thinking = { type: 'enabled', budget_tokens: budget };
    } else if (request.thinking !== undefined && request.thinking !== null) {
      throw refuse('thinking', 'thinking budgets are supported on Bedrock for Anthropic Claude models only (use reasoning_effort)');
    } else {
      outputConfig.effort = request.reasoning_effort === 'minimal' ? 'low' : request.reasoning_effort;
    }
  }
  // As the Anthropic adapter does: Claude answers are not cut short by a default of ours or
  // Bedrock's; the known max output of the model family (by its name inside the Bedrock ID).
  if (maxTokens === undefined && claude) maxTokens = claudeMaxOutput(provider, request.model);
  if (maxTokens !== undefined) inference.maxTokens = maxTokens;
  if (Object.keys(inference).length > 0) input.inferenceConfig = inference;

  const tools = functionTools(request, 'bedrock');
  const choice = toolChoiceOf(request, tools);
  if (tools.length > 0 && choice?.mode !== 'none') {
    const specs: Block[] = [];
    (request.tools ?? []).forEach((t, i) => {
      const tool = tools[i]!;
      specs.push({ toolSpec: { name: tool.name, ...(tool.description ? { description: tool.description } : {}), inputSchema: { json: tool.parameters } } }, ...cachePoint(t));
    });
    const toolConfig: Record<string, unknown> = { tools: specs };
    if (choice?.mode === 'auto') toolConfig.toolChoice = { auto: {} };
    else if (choice?.mode === 'required') toolConfig.toolChoice = { any: {} };
    else if (choice?.mode === 'function') toolConfig.toolChoice = { tool: { name: choice.name } };
    input.toolConfig = toolConfig;
  } else if (choice?.mode === 'none' && toolBlocksUsed) {
    // Converse has no "none" and needs the tools whenever tool blocks are in the history.
    throw refuse('tool_choice', "'none' cannot be expressed on Bedrock once the conversation has tool calls");
  } else if (choice && choice.mode !== 'none') {
    throw refuse('tool_choice', 'needs tools');
  }

  const format = responseFormatOf(request);
  if (format?.type === 'json_schema' || format?.type === 'json_object') {
    const schema = format.type === 'json_schema' ? format.schema : { type: 'object' };
    const name = format.type === 'json_schema' ? format.name : 'json_object';
    const description = format.type === 'json_schema' ? format.description : undefined;
    outputConfig.textFormat = { type: 'json_schema', structure: { jsonSchema: { schema: JSON.stringify(schema), name, ...(description ? { description } : {}) } } };
  }
  if (Object.keys(outputConfig).length > 0) input.outputConfig = outputConfig;
  if (Object.keys(additional).length > 0) input.additionalModelRequestFields = additional;

  const metadata: Record<string, string> = {};
  if (request.metadata && typeof request.metadata === 'object') {
    for (const [k, v] of Object.entries(request.metadata)) {
      if (typeof v !== 'string' || !METADATA_VALUE.test(k) || !METADATA_VALUE.test(v)) throw refuse(`metadata.${k}`, 'Bedrock request metadata takes strings of 1-256 letters, digits, spaces and :_@$#=/+,.-');
      metadata[k] = v;
    }
  }
  if (typeof request.user === 'string') {
    if (!METADATA_VALUE.test(request.user)) throw refuse('user', 'Bedrock request metadata takes 1-256 letters, digits, spaces and :_@$#=/+,.-');
    metadata.user = request.user;
  }
  if (Object.keys(metadata).length > 0) input.requestMetadata = metadata;
  const tier = request.service_tier;
  if (typeof tier === 'string' && tier !== 'auto') {
    if (!['default', 'flex', 'priority'].includes(tier)) throw refuse('service_tier', `must be auto, default, flex or priority on Bedrock, got ${JSON.stringify(tier)}`);
    input.serviceTier = { type: tier };
  }
  return input;
}

/** Converse stop reasons as OpenAI finish reasons. */
export function bedrockFinishReason(stopReason: unknown): FinishReason {
  switch (stopReason) {
    case 'max_tokens':
    case 'model_context_window_exceeded':
      return 'length';
    case 'tool_use':
      return 'tool_calls';
    case 'guardrail_intervened':
    case 'content_filtered':
      return 'content_filter';
    case undefined:
    case null:
      return null;
    default:
      return 'stop';
  }
}

/**
 * Converse usage in the OpenAI shape: `inputTokens` leaves the cache reads and writes out, so
 * `prompt_tokens` sums the three; reads become `prompt_tokens_details.cached_tokens`, writes
 * `cache_creation_input_tokens`, each costed at its own rate.
 */
export function bedrockUsage(u: any): Usage {
  const n = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) && v > 0 ? v : 0);
  const read = n(u?.cacheReadInputTokens);
  const write = n(u?.cacheWriteInputTokens);
  const prompt = n(u?.inputTokens) + read + write;
  const completion = n(u?.outputTokens);
  return { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion, prompt_tokens_details: { cached_tokens: read }, cache_creation_input_tokens: write };
}

/** A Converse answer as a `chat.completion`. */
export function converseToCompletion(provider: ProviderConfig, request: ChatRequest, out: any, requestId?: string): ChatCompletion {
  const content = out?.output?.message?.content;
  if (!Array.isArray(content)) throw new ProviderError('malformed', `${provider.name}: Converse answer has no output message`);
  let text = '';
  let reasoning = '';
  const thinking: ThinkingBlock[] = [];
  const toolCalls: ToolCall[] = [];
  for (const block of content) {
    if (typeof block?.text === 'string') text += block.text;
    else if (block?.toolUse) toolCalls.push({ id: String(block.toolUse.toolUseId), type: 'function', function: { name: String(block.toolUse.name), arguments: JSON.stringify(block.toolUse.input ?? {}) } });
    else if (block?.reasoningContent) {
      if (typeof block.reasoningContent.reasoningText?.text === 'string') reasoning += block.reasoningContent.reasoningText.text;
      const whole = thinkingOfReasoning(block.reasoningContent);
      if (whole) thinking.push(whole);
    }
  }
  const hasText = content.some((b: any) => typeof b?.text === 'string');
  return {
    id: `chatcmpl-${requestId ?? Date.now().toString(36)}`,
    object: 'chat.completion',
    created: Math.floor(Date.now() / 1000),
    model: request.model,
    choices: [
      {
        index: 0,
        message: {
          role: 'assistant',
          content: hasText || toolCalls.length === 0 ? text : null,
          ...(reasoning ? { reasoning_content: reasoning } : {}),
          ...(thinking.length > 0 ? { thinking_blocks: thinking } : {}),
          ...(toolCalls.length > 0 ? { tool_calls: toolCalls } : {}),
        },
        finish_reason: bedrockFinishReason(out.stopReason) ?? 'stop',
        logprobs: null,
      },
    ],
    usage: bedrockUsage(out.usage),
  };
}

/** ConverseStream events as OpenAI chunks: role first, then deltas, then finish and usage. */
export async function* converseToChunks(provider: ProviderConfig, request: ChatRequest, events: AsyncIterable<any>, id: string, mapError: (err: unknown) => ProviderError): AsyncGenerator<ChatCompletionChunk> {
  const created = Math.floor(Date.now() / 1000);
  const chunk = (delta: ChatCompletionChunk['choices'][0]['delta'], finish: FinishReason = null): ChatCompletionChunk => ({
    id,
    object: 'chat.completion.chunk',
    created,
    model: request.model,
    choices: [{ index: 0, delta, finish_reason: finish, logprobs: null }],
  });
  /** Converse content block index -> OpenAI tool_calls index. */
  const toolIndex = new Map<number, number>();
  /** Reasoning blocks being streamed, by content block index: their text and signature so far. */
  const reasoningOf = new Map<number, { text: string; signature: string }>();
  let stopReason: unknown;
  let usage: Usage | undefined;
  let started = false;
  try {
    for await (const ev of events) {
      if (ev.messageStart) {
        started = true;
        yield chunk({ role: 'assistant', content: '' });
      } else if (ev.contentBlockStart?.start?.toolUse) {
        const tu = ev.contentBlockStart.start.toolUse;
        const index = toolIndex.size;
        toolIndex.set(ev.contentBlockStart.contentBlockIndex, index);
        yield chunk({ tool_calls: [{ index, id: String(tu.toolUseId), type: 'function', function: { name: String(tu.name), arguments: '' } }] });
      } else if (ev.contentBlockDelta) {
        const d = ev.contentBlockDelta.delta ?? {};
        if (typeof d.text === 'string') yield chunk({ content: d.text });
        else if (typeof d.toolUse?.input === 'string') {
          const index = toolIndex.get(ev.contentBlockDelta.contentBlockIndex);
          if (index !== undefined) yield chunk({ tool_calls: [{ index, function: { arguments: d.toolUse.input } as ToolCall['function'] }] });
        } else if (d.reasoningContent) {
          const at = ev.contentBlockDelta.contentBlockIndex;
          const r = d.reasoningContent;
          if (!reasoningOf.has(at)) reasoningOf.set(at, { text: '', signature: '' });
          const block = reasoningOf.get(at)!;
          if (typeof r.text === 'string') {
            block.text += r.text;
            yield chunk({ reasoning_content: r.text });
          }
          if (typeof r.signature === 'string') block.signature += r.signature;
          const redacted = thinkingOfReasoning({ redactedContent: r.redactedContent });
          if (redacted) {
            reasoningOf.delete(at);
            yield chunk({ thinking_blocks: [redacted] });
          }
        }
      } else if (ev.contentBlockStop) {
        // A finished reasoning block goes out whole, signature included (as the Anthropic adapter does).
        const block = reasoningOf.get(ev.contentBlockStop.contentBlockIndex);
        if (block) {
          reasoningOf.delete(ev.contentBlockStop.contentBlockIndex);
          if (block.signature) yield chunk({ thinking_blocks: [{ type: 'thinking', thinking: block.text, signature: block.signature }] });
        }
      } else if (ev.messageStop) {
        stopReason = ev.messageStop.stopReason;
      } else if (ev.metadata) {
        usage = bedrockUsage(ev.metadata.usage);
      }
    }
  } catch (err) {
    throw mapError(err);
  }
  if (!started || stopReason === undefined) throw new ProviderError('connection', `${provider.name}: stream ended before messageStop`);
  yield { ...chunk({}, bedrockFinishReason(stopReason) ?? 'stop'), usage: usage ?? bedrockUsage(undefined) };
}
