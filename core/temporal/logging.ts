import { ApplicationFailure } from '@temporalio/common';
import { Runtime, makeTelemetryFilterString, type LogLevel, type LogMetadata, type Logger } from '@temporalio/worker';
import type { Logger as Pino } from 'pino';
import { AppError, FailureType, summarizeError } from '../platform/errors.js';
import type { ProviderErrorDetails } from '../providers/http.js';

const EXPECTED: ReadonlySet<string> = new Set(Object.values(FailureType));

/**
 * An error as log fields. Expected failures (an AppError, a Temporal failure of one of Parley's
 * failure types, e.g. a provider's 4xx or 5xx) are their code and message; a database error its
 * SQLSTATE; anything else keeps its stack, since only an unexpected error needs one.
 */
export function errorFields(err: unknown): Record<string, unknown> {
  if (err instanceof AppError) return { code: err.code, message: err.message };
  if (err instanceof ApplicationFailure && err.type && EXPECTED.has(err.type)) {
    const provider = err.details?.[0] as ProviderErrorDetails | undefined;
    return {
      code: err.type,
      message: err.message,
      ...(provider?.provider ? { provider: provider.provider, httpStatus: provider.httpStatus, providerCode: provider.code } : {}),
    };
  }
  // A failed query's message, stack, detail and hint can echo its parameters: its summary only.
  const summary = summarizeError(err);
  if (summary.name === 'DatabaseError' || summary.name === 'PoolTimeout') return { ...summary };
  if (err instanceof Error) return { name: err.name, message: err.message, stack: err.stack };
  return { message: String(err) };
}

const METHOD = { TRACE: 'trace', DEBUG: 'debug', INFO: 'info', WARN: 'warn', ERROR: 'error' } as const;

/** The SDK's logger interface over pino, errors in their fields as errorFields makes them. */
export function sdkLogger(log: Pino): Logger {
  const write = (level: LogLevel, message: string, meta: LogMetadata = {}) => {
    // The SDK traces every activation: below the process's level, do no work at all.
    if (!log.isLevelEnabled(METHOD[level])) return;
    // The task token is an opaque binary handle: long, and of no use when reading a log.
    const { taskToken: _, ...fields }: Record<string, unknown> = meta;
    for (const key of ['error', 'err']) if (fields[key] !== undefined) fields[key] = errorFields(fields[key]);
    log[METHOD[level]](fields, message);
  };
  return {
    log: write,
    trace: (message, meta) => write('TRACE', message, meta),
    debug: (message, meta) => write('DEBUG', message, meta),
    info: (message, meta) => write('INFO', message, meta),
    warn: (message, meta) => write('WARN', message, meta),
    error: (message, meta) => write('ERROR', message, meta),
  };
}

/**
 * The SDK's runtime logging into a process's pino logger, as JSON lines, its native (Rust) side
 * included. Call it before anything else touches the runtime (installTemporalRuntime then keeps it).
 */
export function installTemporalLogging(log: Pino): void {
  Runtime.install({
    logger: sdkLogger(log),
    telemetryOptions: { logging: { forward: {}, filter: makeTelemetryFilterString({ core: 'WARN', other: 'ERROR' }) } },
  });
}
