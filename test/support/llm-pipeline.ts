/**
 * Test support for the llm pipeline's stage tests: the shared parts built from a real providers
 * config (real Redis under a unique prefix, a real metrics registry, an in-memory span
 * exporter), calls, and tiny real terminal steps that answer or fail as a test says.
 */
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { Registry } from 'prom-client';
import { createLogger } from '../../services/kit/logger';
import { closeRedis, createRedis, waitForRedis, type RedisClient } from '../../services/kit/redis';
import { parseLlmConfig } from '../../services/llm/config';
import { createLlmMetrics } from '../../services/llm/metrics';
import { createAnswer, type Answer } from '../../services/llm/pipeline/answer';
import { createPipelineParts, type PipelineParts } from '../../services/llm/pipeline/parts';
import { compose, newCall, type LlmCall, type Next, type Stage } from '../../services/llm/pipeline/stage';
import { getAdapter, loadAdapters } from '../../services/llm/providers';
import type { ChatCompletion, ChatCompletionChunk, ChatRequest, Usage } from '../../services/openai';
import type { LlmCallOptions } from '../../services/llm/core';
import { TEST_REDIS_URL, deletePrefix, uniquePrefix } from './redis';

/** The parts of a pipeline under test, with what a test reads back. */
export interface PipelineHarness {
  parts: PipelineParts;
  registry: Registry;
  spans: InMemorySpanExporter;
  prefix: string;
  redis: RedisClient;
  /** Closes Redis and deletes the prefix. */
  close(): Promise<void>;
}

/**
 * Builds the parts from a providers file object (validated like the real one). Providers that
 * no test calls may point anywhere: `http://127.0.0.1:9/v1` is a safe nowhere.
 */
export async function pipelineHarness(providersFile: unknown, options: { random?: () => number } = {}): Promise<PipelineHarness> {
  const config = parseLlmConfig(providersFile, 'test');
  await loadAdapters(config.providers.map((p) => p.type));
  const registry = new Registry();
  const spans = new InMemorySpanExporter();
  const tracerProvider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(spans)] });
  const prefix = uniquePrefix('pipe');
  const redis = createRedis({ redisUrl: TEST_REDIS_URL, redisClusterNodes: undefined }, 'test');
  if (!(await waitForRedis(redis))) throw new Error(`Redis at ${TEST_REDIS_URL} is not reachable`);
  let states: () => Array<{ provider: string; state: 'closed' | 'half-open' | 'open' }> = () => [];
  const parts = createPipelineParts({
    config,
    adapterFor: getAdapter,
    redis,
    keyPrefix: prefix,
    logger: createLogger('llm', 'silent'),
    metrics: createLlmMetrics(registry, () => states()),
    tracer: tracerProvider.getTracer('test'),
    random: options.random,
  });
  states = () => [...parts.breakers].map(([provider, b]) => ({ provider, state: b.state }));
  return {
    parts,
    registry,
    spans,
    prefix,
    redis,
    async close() {
      await closeRedis(redis);
      await deletePrefix(prefix);
      await tracerProvider.shutdown();
    },
  };
}

/** A provider entry that no test reaches over the network. */
export function nowhere(name: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { name, type: 'openai', baseUrl: 'http://127.0.0.1:9/v1', timeoutMs: 5_000, ...extra };
}

/** Runs `call` through `stages` onto `terminal`. */
export function runStages(stages: Stage[], terminal: Next, call: LlmCall): Promise<Answer> {
  return compose(stages, terminal)(call);
}

/** A call for a user message to `model`, with `extra` fields of the call set (candidate, targets, ...). */
export function callFor(model: string, extra: Partial<LlmCall> & { body?: Partial<ChatRequest>; options?: LlmCallOptions; stream?: boolean } = {}): LlmCall {
  const { body, options, stream, ...rest } = extra;
  const request: ChatRequest = { model, messages: [{ role: 'user', content: 'hello there' }], ...body };
  return { ...newCall(request, options ?? {}, stream ?? false), ...rest };
}

/** The candidates of `model` as the targets stage resolves them (every target of the alias). */
export function candidatesOf(h: PipelineHarness, model: string): LlmCall['targets'] {
  return h.parts.config.models[model]!.map((t) => ({ ...t, config: h.parts.providers.get(t.provider)! }));
}

/** A completion saying `text`, with `usage` (null: none, as some servers send). */
export function completionOf(text: string, usage: Usage | null = { prompt_tokens: 10, completion_tokens: 5, total_tokens: 15 }, finish: 'stop' | null = 'stop'): ChatCompletion {
  return {
    id: 'chatcmpl-test',
    object: 'chat.completion',
    created: 1,
    model: 'gpt-4o-mini-2024',
    choices: [{ index: 0, message: { role: 'assistant', content: text }, finish_reason: finish }],
    ...(usage ? { usage } : {}),
  } as ChatCompletion;
}

/** What a terminal step saw: each call it got, in order. */
export interface Terminal extends Next {
  calls: LlmCall[];
}

/**
 * A terminal step that answers every call with `completion` (or throws what `fail` returns for
 * that call number, when it returns something), as the provider of the call's candidate.
 */
export function answering(h: PipelineHarness, completion: ChatCompletion = completionOf('hi'), fail: (n: number, call: LlmCall) => Error | undefined = () => undefined): Terminal {
  const calls: LlmCall[] = [];
  const terminal = (async (call: LlmCall) => {
    calls.push(call);
    const error = fail(calls.length, call);
    if (error) throw error;
    return createAnswer({ provider: call.candidate?.provider ?? 'none', model: call.candidate?.model ?? call.request.model, completion, latencyMs: 7, logger: h.parts.logger });
  }) as Terminal;
  terminal.calls = calls;
  return terminal;
}

/** A terminal step that answers with a stream of `chunks` (the first one already received). */
export function streaming(h: PipelineHarness, chunks: ChatCompletionChunk[]): Terminal {
  const calls: LlmCall[] = [];
  const terminal = (async (call: LlmCall) => {
    calls.push(call);
    async function* rest() {
      yield* chunks.slice(1);
    }
    return createAnswer({ provider: call.candidate?.provider ?? 'none', model: call.candidate?.model ?? call.request.model, stream: { first: chunks[0]!, rest: rest() }, latencyMs: 3, logger: h.parts.logger });
  }) as Terminal;
  terminal.calls = calls;
  return terminal;
}

/** Ends a plain answer as the core does. */
export function endPlain(answer: Answer): Promise<void> {
  const completion = answer.completion!;
  return answer.end({ kind: 'success', usage: completion.usage, completion, responseModel: completion.model, used: undefined });
}

/**
 * The value of one sample of `metric` with (at least) `labels`, or undefined. For a histogram
 * name the sample: `<metric>_count`, `<metric>_sum`.
 */
export async function seriesValue(registry: Registry, metric: string, labels: Record<string, string>, sample = metric): Promise<number | undefined> {
  const m = registry.getSingleMetric(metric);
  if (!m) return undefined;
  const { values } = await m.get();
  const hit = values.find(
    (v) => ((v as { metricName?: string }).metricName ?? metric) === sample && Object.entries(labels).every(([k, want]) => String((v.labels as Record<string, unknown>)[k]) === want),
  );
  return hit?.value;
}
