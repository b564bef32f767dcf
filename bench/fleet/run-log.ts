/**
 * bench:fleet's console. Worker, SDK and webhook-receiver logs are counted instead of printed
 * (the most frequent warnings are shown at the end, each under the stage it happened in), the
 * host workers' start-up lines on console.error are counted too, and the bench's own lines
 * carry the seconds since the run began.
 */
import type { WebhookLogger } from '../../webhooks/log.js';
import { installRuntime } from '../../workers/logging.js';

export class RunLog {
  /** Which part of the run a warning belongs to: setup, baseline, fleet or cleanup. */
  stage = 'setup';
  /** `[stage] message` → how often. */
  readonly warnings = new Map<string, number>();
  /** SDK notices that an activity-only worker polls no workflow tasks (expected). */
  sdkNotices = 0;
  /** Host-worker start-up lines (INFO on console.error). */
  workerInfoLines = 0;
  readonly webhook: WebhookLogger = {
    info: () => {},
    warn: (msg, f) => this.noteWarning(`webhook WARN ${msg}${f?.reason ? `: ${String(f.reason)}` : ''}`.slice(0, 200)),
    error: (msg, f) => this.noteWarning(`webhook ERROR ${msg}${f?.reason ? `: ${String(f.reason)}` : ''}`.slice(0, 200)),
  };
  private readonly consoleError = console.error;
  private readonly startedAt: number;

  /** Takes over the worker runtime's log sink and console.error until restoreConsole(). */
  constructor() {
    installRuntime({
      level: 'WARN',
      sink: (line) => {
        try {
          const o = JSON.parse(line) as { level?: string; msg?: string; message?: string };
          if (o.level === 'WARN' || o.level === 'ERROR') this.noteWarning(`worker ${o.level} ${o.msg ?? ''}${o.message ? `: ${o.message}` : ''}`.slice(0, 200));
        } catch {
          this.noteWarning(line.slice(0, 200));
        }
      },
    });
    // The host worker prints its start-up lines (reconciled at start, …) with console.error.
    const consoleError = this.consoleError;
    console.error = (...args: unknown[]) => {
      const text = args.map(String).join(' ');
      if (text.includes('"level":"INFO"')) this.workerInfoLines++;
      else if (text.includes('"level":"WARN"')) this.noteWarning(text.slice(0, 200));
      else consoleError(...args);
    };
    this.startedAt = performance.now();
  }

  readonly noteWarning = (msg: string): void => {
    // Activity-only workers (the host queues) say so once each: expected, not a problem.
    if (msg.includes('No workflows registered, not polling for workflow tasks')) {
      this.sdkNotices++;
      return;
    }
    const key = `[${this.stage}] ${msg}`;
    this.warnings.set(key, (this.warnings.get(key) ?? 0) + 1);
  };

  /** Seconds since the run began, right-aligned: `  12.3 s`. */
  readonly t = (): string => `${((performance.now() - this.startedAt) / 1000).toFixed(1).padStart(6)} s`;

  readonly say = (line: string): void => console.log(`${this.t()}  ${line}`);

  restoreConsole(): void {
    console.error = this.consoleError;
  }
}
