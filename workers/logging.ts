/**
 * Structured log lines (one JSON object per line) for the worker, the SDK's own messages
 * included. Installed once per process, before any Temporal connection.
 */
import { DefaultLogger, Runtime, type LogEntry } from '@temporalio/worker';
import type { LogLevel } from '@temporalio/common';

export type LineSink = (line: string) => void;

export function jsonLogLine(entry: LogEntry): string {
  const { message, level, meta } = entry;
  const time = new Date(Number(entry.timestampNanos / 1_000_000n)).toISOString();
  const fields: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(meta ?? {})) {
    // Workflow/activity context carries many ids; keep the useful ones short.
    if (v === undefined || k === 'namespace' || k === 'sdkComponent' || k === 'taskToken') continue;
    fields[k] = v instanceof Error ? { message: v.message, name: v.name } : v;
  }
  return JSON.stringify({ time, level, msg: message, ...fields }, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v));
}

let installed = false;

/** Installs the Runtime with a JSON-lines logger (idempotent; first call wins). */
export function installRuntime(opts: { level?: LogLevel; sink?: LineSink; metricsBindAddress?: string } = {}): void {
  if (installed) return;
  installed = true;
  const sink = opts.sink ?? ((line: string) => process.stderr.write(line + '\n'));
  Runtime.install({
    // Ekiden's entry points handle signals themselves: `up` must keep its worker running
    // while the pool cleans up after Ctrl-C.
    shutdownSignals: [],
    logger: new DefaultLogger(opts.level ?? 'INFO', (entry) => sink(jsonLogLine(entry))),
    telemetryOptions: {
      // The SDK core's own (Rust) messages go through the same JSON-lines logger.
      logging: { filter: { core: 'WARN', other: 'WARN' }, forward: {} },
      ...(opts.metricsBindAddress ? { metrics: { prometheus: { bindAddress: opts.metricsBindAddress } } } : {}),
    },
  });
}
