/**
 * What every part of bench:fleet shares: its options (checked before anything starts), the
 * temp dir, the run's console, and the interruption — the first SIGINT/SIGTERM aborts the run
 * so it cleans up, a second one exits at once.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import type { RunLog } from './run-log.js';

export interface BenchOptions {
  /** Jobs per second. */
  rate: number;
  durationS: number;
  hosts: number;
  slots: number;
  pools: number;
  minIdle: number;
  max: number;
  jobSeconds: number;
  skipBaseline: boolean;
  /** Jobs queued per phase: rate × duration, at least 1. */
  jobs: number;
  /** Runners kept warm: pools × min-idle. */
  warm: number;
  /** The job's one step. */
  jobRun: string;
}

/** The command line (process.argv); throws on a value the bench cannot run with. */
export function parseOptions(): BenchOptions {
  const { values } = parseArgs({
    options: {
      rate: { type: 'string', default: '0.5' },
      duration: { type: 'string', default: '90' },
      hosts: { type: 'string', default: '50' },
      slots: { type: 'string', default: '2' },
      pools: { type: 'string', default: '2' },
      'min-idle': { type: 'string', default: '1' },
      max: { type: 'string', default: '100' },
      'job-seconds': { type: 'string', default: '0' },
      'skip-baseline': { type: 'boolean', default: false },
    },
  });
  const rate = Number(values.rate);
  const durationS = Number(values.duration);
  const hosts = Number(values.hosts);
  const slots = Number(values.slots);
  const pools = Number(values.pools);
  const minIdle = Number(values['min-idle']);
  const max = Number(values.max);
  const jobSeconds = Number(values['job-seconds']);
  if (!(jobSeconds >= 0 && jobSeconds <= 600)) throw new Error(`--job-seconds: ${values['job-seconds']} is not between 0 and 600`);
  const jobRun = jobSeconds > 0 ? `sleep ${jobSeconds}; echo hi` : 'echo hi';
  for (const [k, v] of Object.entries({ rate, duration: durationS, hosts, slots, pools, max })) {
    if (!(v > 0)) throw new Error(`--${k}: ${v} is not a positive number`);
  }
  if (!(Number.isInteger(minIdle) && minIdle >= 0)) throw new Error(`--min-idle: ${minIdle} is not a whole number ≥ 0`);
  if (!Number.isInteger(hosts) || hosts > 99) throw new Error('--hosts: a whole number, at most 99 (ids h01…h99)');
  if (!Number.isInteger(pools) || pools > 26) throw new Error('--pools: a whole number, at most 26');
  return {
    rate,
    durationS,
    hosts,
    slots,
    pools,
    minIdle,
    max,
    jobSeconds,
    skipBaseline: values['skip-baseline'] === true,
    jobs: Math.max(1, Math.round(rate * durationS)),
    warm: pools * minIdle,
    jobRun,
  };
}

export interface Bench {
  opts: BenchOptions;
  /** The run's temp dir: dev-server log, image, every host's VMs and data. */
  dir: string;
  log: RunLog;
  signal: AbortSignal;
  /** A sleep an interruption ends (rejecting). */
  pause(ms: number): Promise<void>;
}

/** SIGINT/SIGTERM: the first aborts the returned signal (the run cleans up), a second exits at once. */
export function handleInterruption(): { signal: AbortSignal; pause: (ms: number) => Promise<void> } {
  const abort = new AbortController();
  const onSignal = (sig: string) => {
    if (abort.signal.aborted) {
      console.log(`${sig} again: exiting without cleanup (temp dir and fake VMs may be left)`);
      process.exit(130);
    }
    console.log(`${sig}: stopping — cancelling pools and runners, then checking for leftovers (${sig} again exits at once)`);
    abort.abort(new Error(`interrupted (${sig})`));
  };
  process.on('SIGINT', () => onSignal('SIGINT'));
  process.on('SIGTERM', () => onSignal('SIGTERM'));
  return { signal: abort.signal, pause: (ms: number) => sleep(ms, undefined, { signal: abort.signal }) };
}

/** A promise that gives up after `ms` (the timer never outlives it). */
export async function within<T>(ms: number, what: string, work: () => Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      work(),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms / 1000} s`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
