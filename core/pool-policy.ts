/**
 * The rules of a pool, as pure functions: what the pool believes each runner is doing (a small
 * state machine fed by the runner's own reports, webhooks and the pool's retirements), how
 * many runners it wants, which idle runners it retires, which host it tries first, how long it
 * backs off after failures, and what to do next. PoolWorkflow (workflows/pool.ts) only wires
 * these to messages, timers and activities; test/core/pool-policy.test.ts walks every state ×
 * event pair. Time is always a parameter. Pure module: safe in workflow code.
 */
import type { RunnerOutcome } from './runner-spec.js';

export type PoolRunnerPhase = 'starting' | 'idle' | 'busy' | 'cleaning';
export const POOL_RUNNER_PHASES: readonly PoolRunnerPhase[] = ['starting', 'idle', 'busy', 'cleaning'];

/** What the pool knows about one of its runners. */
export interface TrackedRunner {
  phase: PoolRunnerPhase;
  /** Told to retire (idle and not needed); not counted toward the target any more. */
  retiring: boolean;
}

export type TrackedRunnerEvent =
  /** The runner reported a phase of its own (`runnerPhaseChanged`). */
  | { kind: 'reported'; phase: PoolRunnerPhase }
  /** GitHub said this runner took a job (an `in_progress` webhook naming it). */
  | { kind: 'job-taken' }
  /** The pool decided to retire it. */
  | { kind: 'retire' };

export interface TrackedRunnerStep {
  runner: TrackedRunner;
  /** Tell the runner to retire (`retireRunner`). */
  signalRetire: boolean;
}

/**
 * One event on one runner. A runner that is cleaning stays cleaning; a busy runner is never
 * taken back to idle by a late report (the webhook was first); a runner that turns out busy is
 * no longer retiring (its retirement lost the race to a job); only an idle runner is retired.
 */
export function trackRunner(r: TrackedRunner, e: TrackedRunnerEvent): TrackedRunnerStep {
  const same = { runner: r, signalRetire: false };
  if (r.phase === 'cleaning') return same;
  switch (e.kind) {
    case 'reported':
      if (e.phase === r.phase) return same;
      if (r.phase === 'busy' && e.phase === 'idle') return same;
      return { runner: { phase: e.phase, retiring: e.phase === 'busy' ? false : r.retiring }, signalRetire: false };
    case 'job-taken':
      if (r.phase === 'busy') return same;
      return { runner: { phase: 'busy', retiring: false }, signalRetire: false };
    case 'retire':
      if (r.phase !== 'idle' || r.retiring) return same;
      return { runner: { phase: 'idle', retiring: true }, signalRetire: true };
  }
}

export interface Demand {
  draining: boolean;
  busy: number;
  queuedJobs: number;
  size: number;
  minIdle: number;
  max: number;
}

/** target = draining ? 0 : min(max, max(size, busy + queued jobs + minIdle)) */
export function poolTarget(d: Demand): number {
  if (d.draining) return 0;
  return Math.min(d.max, Math.max(d.size, d.busy + d.queuedJobs + d.minIdle));
}

export interface RunnerView {
  workflowId: string;
  host: string;
  phase: PoolRunnerPhase;
  /** Epoch ms it entered its phase. */
  since: number;
}

/** Runners that count toward the target: alive and not being retired. */
export function keptCount(runners: readonly RunnerView[], retiring: ReadonlySet<string>): number {
  return runners.filter((r) => r.phase !== 'cleaning' && !retiring.has(r.workflowId)).length;
}

/**
 * Which idle runners to retire when the pool keeps more than its target: newest idle first
 * (a job that just landed usually went to the runner that waited longest); busy runners
 * always finish, starting ones get their chance first.
 */
export function chooseRetirees(runners: readonly RunnerView[], retiring: ReadonlySet<string>, target: number): string[] {
  const excess = keptCount(runners, retiring) - target;
  if (excess <= 0) return [];
  return runners
    .filter((r) => r.phase === 'idle' && !retiring.has(r.workflowId))
    .sort((a, b) => b.since - a.since || compareText(a.workflowId, b.workflowId))
    .slice(0, excess)
    .map((r) => r.workflowId);
}

/** Idle runners rolled onto a new image at once, per pool (the rest wait their turn). */
export const ROLLOUT_BATCH = 2;

/**
 * Which idle runners to retire so the pool moves onto `currentDigest`: idle runners on another
 * image (or none recorded), oldest first, so that at most `batch` of them are retiring at once
 * (each is replaced on the new image before the next goes). Busy runners are never touched:
 * they finish their job on the image they started with; starting ones are left to finish
 * booting and are retired once idle.
 */
export function chooseRollout(
  runners: readonly (RunnerView & { imageDigest?: string })[],
  retiring: ReadonlySet<string>,
  currentDigest: string | undefined,
  batch = ROLLOUT_BATCH,
): string[] {
  if (currentDigest === undefined) return [];
  const stale = (r: RunnerView & { imageDigest?: string }) => r.imageDigest !== currentDigest;
  const inFlight = runners.filter((r) => retiring.has(r.workflowId) && stale(r)).length;
  const room = batch - inFlight;
  if (room <= 0) return [];
  return runners
    .filter((r) => r.phase === 'idle' && !retiring.has(r.workflowId) && stale(r))
    .sort((a, b) => a.since - b.since || compareText(a.workflowId, b.workflowId))
    .slice(0, room)
    .map((r) => r.workflowId);
}

/** Code-point order: the same on every worker, whatever its locale (never localeCompare). */
export function compareText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** The order to ask hosts for a slot: the pool's least used host first, ties by host id. */
export function placementOrder(hosts: readonly string[], runners: readonly RunnerView[]): string[] {
  const used = new Map<string, number>();
  for (const r of runners) used.set(r.host, (used.get(r.host) ?? 0) + 1);
  return [...hosts].sort((a, b) => (used.get(a) ?? 0) - (used.get(b) ?? 0) || compareText(a, b));
}

export interface Backoff {
  initialMs: number;
  maxMs: number;
}

/** Delay after the n-th failure in a row (n ≥ 1): initialMs, doubling, capped at maxMs. */
export function backoffDelay(consecutiveFailures: number, b: Backoff): number {
  if (consecutiveFailures < 1) return 0;
  // 2 ** 1100 is Infinity, and Math.min keeps it at maxMs.
  return Math.min(b.maxMs, b.initialMs * 2 ** (consecutiveFailures - 1));
}

/** How a runner's end counts for its pool. */
export interface OutcomeEffect {
  /** Counted as a failure: backoff grows. */
  failed: boolean;
  /** Proves the pool's runners work: the failure streak ends. */
  resetsStreak: boolean;
}

export const OUTCOME_EFFECT: Readonly<Record<RunnerOutcome, OutcomeEffect>> = {
  completed: { failed: false, resetsStreak: true },
  retired: { failed: false, resetsStreak: true },
  'idle-timeout': { failed: false, resetsStreak: true },
  'job-timeout': { failed: false, resetsStreak: false },
  // A runner that exits without taking a job (an outdated one does) would be replaced by another
  // that does the same: back off instead of looping.
  'runner-exited': { failed: true, resetsStreak: false },
  cancelled: { failed: false, resetsStreak: false },
  'host-down': { failed: false, resetsStreak: false },
  failed: { failed: true, resetsStreak: false },
};

export interface FailureStreak {
  completed: number;
  failed: number;
  consecutiveFailures: number;
  backoffUntil?: number;
}

/** The pool's counters after a runner ended with `outcome` at `now`. */
export function countRunnerEnd(s: FailureStreak, outcome: RunnerOutcome, backoff: Backoff, now: number): FailureStreak & { delayMs?: number } {
  const effect = OUTCOME_EFFECT[outcome];
  if (effect.failed) {
    const consecutiveFailures = s.consecutiveFailures + 1;
    const delayMs = backoffDelay(consecutiveFailures, backoff);
    return { completed: s.completed, failed: s.failed + 1, consecutiveFailures, backoffUntil: now + delayMs, delayMs };
  }
  return { ...s, completed: s.completed + 1, consecutiveFailures: effect.resetsStreak ? 0 : s.consecutiveFailures };
}

export interface PoolSituation {
  now: number;
  target: number;
  kept: number;
  /** Runners of the pool in any phase. */
  runners: number;
  /** The pool has started all the runners it may (maxRunners). */
  limitReached: boolean;
  backoffUntil?: number;
  consecutiveFailures: number;
}

export type PoolStep =
  /** Nothing left to do (maxRunners reached, every runner ended). */
  | { kind: 'finish' }
  /** Start one more runner. */
  | { kind: 'place' }
  /** Wait for a message, or at most waitMs; `blocked` says why the pool is below target. */
  | { kind: 'wait'; waitMs?: number; blocked?: string };

/** What the pool does next, once its excess runners were retired. */
export function nextPoolStep(s: PoolSituation): PoolStep {
  if (s.limitReached && s.runners === 0) return { kind: 'finish' };
  if (s.kept >= s.target || s.limitReached) return { kind: 'wait' };
  if (s.backoffUntil !== undefined && s.now < s.backoffUntil) {
    return { kind: 'wait', waitMs: s.backoffUntil - s.now, blocked: `backing off after ${s.consecutiveFailures} failed runners` };
  }
  return { kind: 'place' };
}

/** Queued jobs nobody reported on for `ttlMs` are forgotten. */
export function expireQueued(queued: Readonly<Record<string, number>>, now: number, ttlMs: number): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [id, at] of Object.entries(queued)) if (at >= now - ttlMs) out[id] = at;
  return out;
}

/** Most runners one pool keeps (config/bounds.ts gives operators the same limit). */
export const MAX_POOL_RUNNERS = 1000;

/** The one check of a pool's numbers, used at start and by the scale validator (whoever sends it). */
export function validateScale(c: { size: number; minIdle: number; max: number }): void {
  for (const [field, v] of Object.entries(c)) {
    if (!Number.isInteger(v) || v < 0) throw new Error(`${field}: ${v} is not a whole number ≥ 0`);
    if (v > MAX_POOL_RUNNERS) throw new Error(`${field}: ${v} is above ${MAX_POOL_RUNNERS}, the most runners a pool keeps`);
  }
  if (c.max < 1) throw new Error(`max: ${c.max} must be at least 1`);
  if (c.size > c.max) throw new Error(`size: ${c.size} is above max ${c.max}; raise max too`);
  if (c.minIdle > c.max) throw new Error(`minIdle: ${c.minIdle} is above max ${c.max}; raise max too`);
}
