import pino, { type Logger } from 'pino';
import type { LogLevel } from './config';

export type { Logger } from 'pino';

/** Paths pino replaces with `[redacted]`: credentials never reach the logs. */
export const REDACT_PATHS = [
  'req.headers.authorization',
  'req.headers["x-api-key"]',
  'req.headers.cookie',
  'headers.authorization',
  'headers["x-api-key"]',
  'authorization',
  'apiKey',
  'password',
  '*.apiKey',
  '*.password',
  '*.authorization',
];

/** Structured JSON logs with the service name on every line and secrets redacted. */
export function createLogger(service: string, level: LogLevel, destination?: pino.DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service },
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    destination,
  );
}

type LogMethod = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal';

/**
 * A request's logger that becomes a real pino child only when it first writes a line at an
 * enabled level (or is asked for its bindings, a child, ...). Fastify makes one child logger per
 * request to bind the request id; with redaction on, pino serialises and redacts those bindings
 * on every `child()` call, which cost ~2 % of the CPU of a plain completion, for lines that are
 * almost never written (request logging is off, 4xx are logged at debug).
 */
export class LazyChildLogger {
  #child: Logger | undefined;

  constructor(
    private readonly parent: Logger,
    private readonly childBindings: pino.Bindings,
    private readonly childOptions: pino.ChildLoggerOptions,
  ) {}

  /** The real child logger, made on first use. */
  get materialised(): Logger {
    return (this.#child ??= this.parent.child(this.childBindings, this.childOptions));
  }

  get level(): string {
    return (this.#child ?? this.parent).level;
  }

  set level(level: string) {
    this.materialised.level = level;
  }

  isLevelEnabled(level: string): boolean {
    return (this.#child ?? this.parent).isLevelEnabled(level);
  }

  private write(method: LogMethod, args: unknown[]): void {
    if (!this.isLevelEnabled(method)) return;
    (this.materialised[method] as (...a: unknown[]) => void)(...args);
  }

  trace(...args: unknown[]): void {
    this.write('trace', args);
  }

  debug(...args: unknown[]): void {
    this.write('debug', args);
  }

  info(...args: unknown[]): void {
    this.write('info', args);
  }

  warn(...args: unknown[]): void {
    this.write('warn', args);
  }

  error(...args: unknown[]): void {
    this.write('error', args);
  }

  fatal(...args: unknown[]): void {
    this.write('fatal', args);
  }

  silent(): void {}

  child(bindings: pino.Bindings, options?: pino.ChildLoggerOptions): Logger {
    return this.materialised.child(bindings, options);
  }

  bindings(): pino.Bindings {
    return this.materialised.bindings();
  }
}

/**
 * Fastify's `childLoggerFactory` that hands each request a {@link LazyChildLogger}; typed as a
 * pino logger because that is what Fastify and our code call on it.
 */
export function lazyChildLoggerFactory(logger: Logger, bindings: pino.Bindings, options: pino.ChildLoggerOptions): Logger {
  // A route with its own log level: the level check must be the child's, so it is made now.
  if (options?.level !== undefined) return logger.child(bindings, options);
  return new LazyChildLogger(logger, bindings, options) as unknown as Logger;
}
