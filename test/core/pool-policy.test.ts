/**
 * The pool's rules (core/pool-policy.ts) as tables: every (runner phase × retiring) × event
 * cell of the tracking state machine is written out, and the target, retirement, placement,
 * backoff, end accounting and next-step rules are checked case by case.
 */
import { describe, expect, it } from 'vitest';
import {
  backoffDelay,
  chooseRetirees,
  chooseRollout,
  compareText,
  countRunnerEnd,
  expireQueued,
  nextPoolStep,
  OUTCOME_EFFECT,
  placementOrder,
  POOL_RUNNER_PHASES,
  poolTarget,
  trackRunner,
  validateScale,
  type PoolRunnerPhase,
  type RunnerView,
  type TrackedRunnerEvent,
} from '../../core/pool-policy.js';
import type { RunnerOutcome } from '../../core/runner-spec.js';

const EVENTS: Record<string, TrackedRunnerEvent> = {
  'reported starting': { kind: 'reported', phase: 'starting' },
  'reported idle': { kind: 'reported', phase: 'idle' },
  'reported busy': { kind: 'reported', phase: 'busy' },
  'reported cleaning': { kind: 'reported', phase: 'cleaning' },
  'job-taken': { kind: 'job-taken' },
  retire: { kind: 'retire' },
};

/** state "phase" or "phase+retiring" → event → [next state, signal retire?] */
type Cell = [string, boolean];
const S = (to: string): Cell => [to, false];
const TABLE: Record<string, Record<keyof typeof EVENTS, Cell>> = {
  starting: { 'reported starting': S('starting'), 'reported idle': S('idle'), 'reported busy': S('busy'), 'reported cleaning': S('cleaning'), 'job-taken': S('busy'), retire: S('starting') },
  'starting+retiring': { 'reported starting': S('starting+retiring'), 'reported idle': S('idle+retiring'), 'reported busy': S('busy'), 'reported cleaning': S('cleaning+retiring'), 'job-taken': S('busy'), retire: S('starting+retiring') },
  idle: { 'reported starting': S('starting'), 'reported idle': S('idle'), 'reported busy': S('busy'), 'reported cleaning': S('cleaning'), 'job-taken': S('busy'), retire: ['idle+retiring', true] },
  'idle+retiring': { 'reported starting': S('starting+retiring'), 'reported idle': S('idle+retiring'), 'reported busy': S('busy'), 'reported cleaning': S('cleaning+retiring'), 'job-taken': S('busy'), retire: S('idle+retiring') },
  // A busy runner is never taken back to idle by a late report: the webhook was first.
  busy: { 'reported starting': S('starting'), 'reported idle': S('busy'), 'reported busy': S('busy'), 'reported cleaning': S('cleaning'), 'job-taken': S('busy'), retire: S('busy') },
  'busy+retiring': { 'reported starting': S('starting+retiring'), 'reported idle': S('busy+retiring'), 'reported busy': S('busy+retiring'), 'reported cleaning': S('cleaning+retiring'), 'job-taken': S('busy+retiring'), retire: S('busy+retiring') },
  // Cleaning is final.
  cleaning: { 'reported starting': S('cleaning'), 'reported idle': S('cleaning'), 'reported busy': S('cleaning'), 'reported cleaning': S('cleaning'), 'job-taken': S('cleaning'), retire: S('cleaning') },
  'cleaning+retiring': { 'reported starting': S('cleaning+retiring'), 'reported idle': S('cleaning+retiring'), 'reported busy': S('cleaning+retiring'), 'reported cleaning': S('cleaning+retiring'), 'job-taken': S('cleaning+retiring'), retire: S('cleaning+retiring') },
};

const label = (r: { phase: PoolRunnerPhase; retiring: boolean }) => (r.retiring ? `${r.phase}+retiring` : r.phase);

describe('pool runner tracking', () => {
  it('the table has a cell for every state × event', () => {
    const states = POOL_RUNNER_PHASES.flatMap((p) => [p, `${p}+retiring`]);
    expect(Object.keys(TABLE).sort()).toEqual(states.sort());
    for (const s of states) expect(Object.keys(TABLE[s]!).sort()).toEqual(Object.keys(EVENTS).sort());
  });

  const cells = Object.entries(TABLE).flatMap(([state, row]) => Object.entries(row).map(([event, cell]) => [state, event, cell] as const));
  it.each(cells)('%s + %s → %j', (state, event, [to, signal]) => {
    const [phase, retiring] = state.split('+') as [PoolRunnerPhase, string | undefined];
    const step = trackRunner({ phase, retiring: retiring !== undefined }, EVENTS[event]!);
    expect(label(step.runner)).toBe(to);
    expect(step.signalRetire).toBe(signal);
  });
});

describe('pool target', () => {
  it.each([
    // draining, busy, queued, size, minIdle, max → target
    [false, 0, 0, 2, 0, 4, 2],
    [false, 3, 0, 2, 0, 4, 3],
    [false, 1, 2, 1, 1, 4, 4],
    [false, 5, 5, 1, 1, 4, 4],
    [false, 0, 0, 0, 0, 4, 0],
    [false, 0, 0, 0, 1, 4, 1],
    [true, 3, 3, 2, 1, 4, 0],
  ])('draining %s, busy %i, queued %i, size %i, minIdle %i, max %i → %i', (draining, busy, queuedJobs, size, minIdle, max, want) => {
    expect(poolTarget({ draining, busy, queuedJobs, size, minIdle, max })).toBe(want);
  });
});

const r = (workflowId: string, phase: PoolRunnerPhase, since: number, host = 'h1'): RunnerView => ({ workflowId, phase, since, host });

describe('rollout onto a new image build', () => {
  const on = (id: string, phase: PoolRunnerPhase, since: number, imageDigest?: string) => ({ ...r(id, phase, since), ...(imageDigest ? { imageDigest } : {}) });
  const runners = [on('a', 'idle', 30, 'old'), on('b', 'idle', 10, 'old'), on('c', 'busy', 5, 'old'), on('d', 'starting', 1, 'old'), on('e', 'idle', 20, 'new'), on('f', 'idle', 40), on('g', 'cleaning', 2, 'old')];
  it.each([
    ['no current build: nothing moves', new Set<string>(), undefined, 2, []],
    ['idle runners on another build (or none recorded), oldest first, a batch at a time', new Set<string>(), 'new', 2, ['b', 'a']],
    ['one stale runner already retiring leaves room for one more', new Set(['b']), 'new', 2, ['a']],
    ['a full batch retiring: none', new Set(['b', 'a']), 'new', 2, []],
    ['a runner retiring on the current build does not use the batch', new Set(['e']), 'new', 2, ['b', 'a']],
    ['batch of 3 reaches the one with no digest recorded', new Set<string>(), 'new', 3, ['b', 'a', 'f']],
    ['busy, starting and cleaning runners are never chosen', new Set<string>(), 'new', 10, ['b', 'a', 'f']],
  ] as const)('%s', (_why, retiring, digest, batch, want) => {
    expect(chooseRollout(runners, retiring, digest, batch)).toEqual(want);
  });
});

describe('retirement', () => {
  const runners = [r('a', 'idle', 10), r('b', 'idle', 30), r('c', 'busy', 5), r('d', 'starting', 40), r('e', 'idle', 20), r('f', 'cleaning', 1)];
  it.each([
    [5, new Set<string>(), []],
    [4, new Set<string>(), ['b']],
    [2, new Set<string>(), ['b', 'e', 'a']],
    [0, new Set<string>(), ['b', 'e', 'a']], // busy and starting runners are never retired
    [3, new Set(['b']), ['e']], // one already retiring does not count, and is not chosen twice
  ])('target %i with retiring %j → %j', (target, retiring, want) => {
    expect(chooseRetirees(runners, retiring, target)).toEqual(want);
  });
  it('ties are broken by workflow id, not by input order', () => {
    expect(chooseRetirees([r('y', 'idle', 1), r('x', 'idle', 1)], new Set(), 1)).toEqual(['x']);
  });
});

describe('placement', () => {
  it.each([
    [['h1', 'h2', 'h3'], [], ['h1', 'h2', 'h3']],
    [['h3', 'h1', 'h2'], [], ['h1', 'h2', 'h3']],
    [['h1', 'h2'], [r('a', 'idle', 0, 'h1')], ['h2', 'h1']],
    [['h1', 'h2'], [r('a', 'idle', 0, 'h2'), r('b', 'busy', 0, 'h2'), r('c', 'idle', 0, 'h1')], ['h1', 'h2']],
    [['mac-B', 'mac-a'], [], ['mac-B', 'mac-a']], // code-point order: the same on every worker
  ])('hosts %j with runners %j → %j', (hosts, runners, want) => {
    expect(placementOrder(hosts, runners)).toEqual(want);
  });
  it('compareText is code-point order', () => {
    expect(['b', 'B', 'a', 'é'].sort(compareText)).toEqual(['B', 'a', 'b', 'é']);
  });
});

describe('backoff', () => {
  const b = { initialMs: 1_000, maxMs: 8_000 };
  it.each([
    [0, 0],
    [1, 1_000],
    [2, 2_000],
    [3, 4_000],
    [4, 8_000],
    [5, 8_000],
    [2_000, 8_000],
  ])('after %i failures in a row → %i ms', (n, want) => {
    expect(backoffDelay(n, b)).toBe(want);
  });
});

describe('runner ends', () => {
  const b = { initialMs: 1_000, maxMs: 8_000 };
  const start = { completed: 4, failed: 2, consecutiveFailures: 2, backoffUntil: 500 };
  const outcomes = Object.keys(OUTCOME_EFFECT) as RunnerOutcome[];
  it('every outcome has an effect', () => {
    expect(outcomes.sort()).toEqual(['cancelled', 'completed', 'failed', 'host-down', 'idle-timeout', 'job-timeout', 'retired', 'runner-exited']);
  });
  it.each([
    ['completed', { completed: 5, failed: 2, consecutiveFailures: 0, backoffUntil: 500 }],
    ['retired', { completed: 5, failed: 2, consecutiveFailures: 0, backoffUntil: 500 }],
    ['idle-timeout', { completed: 5, failed: 2, consecutiveFailures: 0, backoffUntil: 500 }],
    ['job-timeout', { completed: 5, failed: 2, consecutiveFailures: 2, backoffUntil: 500 }],
    ['runner-exited', { completed: 4, failed: 3, consecutiveFailures: 3, backoffUntil: 10_000 + 4_000, delayMs: 4_000 }],
    ['cancelled', { completed: 5, failed: 2, consecutiveFailures: 2, backoffUntil: 500 }],
    ['host-down', { completed: 5, failed: 2, consecutiveFailures: 2, backoffUntil: 500 }],
    ['failed', { completed: 4, failed: 3, consecutiveFailures: 3, backoffUntil: 10_000 + 4_000, delayMs: 4_000 }],
  ] as const)('%s → %j', (outcome, want) => {
    expect(countRunnerEnd(start, outcome, b, 10_000)).toEqual(want);
  });
});

describe('next step', () => {
  const base = { now: 1_000, target: 2, kept: 1, runners: 1, limitReached: false, consecutiveFailures: 0 };
  it.each([
    ['below target → place', {}, { kind: 'place' }],
    ['at target → wait', { kept: 2 }, { kind: 'wait' }],
    ['above target → wait (retirement is separate)', { kept: 3 }, { kind: 'wait' }],
    ['backing off', { backoffUntil: 4_000, consecutiveFailures: 3 }, { kind: 'wait', waitMs: 3_000, blocked: 'backing off after 3 failed runners' }],
    ['backoff over', { backoffUntil: 1_000, consecutiveFailures: 3 }, { kind: 'place' }],
    ['limit reached with runners left → wait', { limitReached: true }, { kind: 'wait' }],
    ['limit reached, every runner ended → finish', { limitReached: true, runners: 0, kept: 0 }, { kind: 'finish' }],
    ['no runners, not at the limit → place', { runners: 0, kept: 0 }, { kind: 'place' }],
  ])('%s', (_why, o, want) => {
    expect(nextPoolStep({ ...base, ...o })).toEqual(want);
  });
});

describe('queued jobs and scale', () => {
  it('queued jobs older than the ttl are forgotten', () => {
    expect(expireQueued({ a: 100, b: 500, c: 900 }, 1_000, 500)).toEqual({ b: 500, c: 900 });
  });
  it.each([
    [{ size: 1, minIdle: 0, max: 1 }, undefined],
    [{ size: 0, minIdle: 0, max: 1 }, undefined],
    [{ size: -1, minIdle: 0, max: 1 }, /size: -1 is not a whole number/],
    [{ size: 1.5, minIdle: 0, max: 2 }, /size: 1.5 is not a whole number/],
    [{ size: 0, minIdle: 0, max: 0 }, /max: 0 must be at least 1/],
    [{ size: 3, minIdle: 0, max: 2 }, /size: 3 is above max 2/],
    [{ size: 1, minIdle: 3, max: 2 }, /minIdle: 3 is above max 2/],
    [{ size: 1, minIdle: 0, max: 1e300 }, /max: 1e\+300 is not a whole number|max: 1e\+300 is above 1000/],
    [{ size: 1001, minIdle: 0, max: 1001 }, /size: 1001 is above 1000, the most runners a pool keeps/],
  ])('validateScale(%j)', (c, err) => {
    if (err) expect(() => validateScale(c)).toThrow(err);
    else expect(() => validateScale(c)).not.toThrow();
  });
});
