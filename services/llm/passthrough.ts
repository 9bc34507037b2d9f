/**
 * The side channel that lets a `POST /v1/messages` call pass through to an Anthropic provider
 * faithfully while it still runs the whole llm pipeline (routing, retries, fallback, breaker,
 * limits, metrics, cost, spans). The canonical request translated from the Anthropic body carries
 * a {@link PassthroughSink} under a symbol (never serialised, never seen by other adapters);
 * the Anthropic adapter then sends the client's body (model aside) instead of translating, and
 * records the raw answer (or every raw stream event) in the sink while it still hands the
 * pipeline its canonical form (usage, finish reason) to account for.
 */
import type { AnthropicEvent, AnthropicResponse, MessagesRequest } from '../anthropic';
import type { ChatRequest } from '../openai';

/** The symbol a canonical request carries its {@link PassthroughSink} under. */
export const ANTHROPIC_PASSTHROUGH: unique symbol = Symbol('promptmesh.anthropicPassthrough');

/** The client's Anthropic body and what the Anthropic provider answered to it, raw. */
export class PassthroughSink {
  /** The raw answer of a plain call. */
  message: AnthropicResponse | undefined;
  /** Raw stream events not read yet, in order. */
  readonly events: AnthropicEvent[] = [];

  constructor(
    /** The client's body; `model` is replaced by the provider's, promptmesh's `cache` left out. */
    readonly body: MessagesRequest,
    /** The client's `anthropic-beta` header (comma-separated beta names), sent on with the body. */
    readonly betas?: string,
  ) {}

  /** A new attempt starts: whatever an earlier (failed) one left is void. */
  begin(): void {
    this.message = undefined;
    this.events.length = 0;
  }

  /** The body the provider gets for `model`. */
  bodyFor(model: string, stream: boolean): Record<string, unknown> {
    const out: Record<string, unknown> = { ...this.body, model };
    delete out.cache;
    if (stream) out.stream = true;
    else delete out.stream;
    return out;
  }
}

/** The pass-through sink a request carries, if any. */
export function passthroughOf(request: ChatRequest): PassthroughSink | undefined {
  return (request as { [ANTHROPIC_PASSTHROUGH]?: PassthroughSink })[ANTHROPIC_PASSTHROUGH];
}
