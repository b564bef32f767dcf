/**
 * The runner's rules (core/runner-policy.ts) as tables: every phase × event cell of its state
 * machine, the pool's view of each phase, and every way the wait for a job can end.
 */
import { describe, expect, it } from 'vitest';
import { afterJobWait, FINISHING_GRACE_MS, nextRunnerPhase, outcomeOfFailure, poolPhaseOf, retryBoot, RUNNER_EVENTS, type JobStart, type Removal } from '../../core/runner-policy.js';
import { RunnerPhase } from '../../core/search-attributes.js';

const P = RunnerPhase;
const PHASES = Object.values(P);
const _ = undefined;

// Columns: prepared, cloned, booted, boot-retry, launched, job-started, cleanup, succeeded, failed
const TABLE: Record<RunnerPhase, Array<RunnerPhase | undefined>> = {
  [P.Pulling]: [P.Cloning, _, _, _, _, _, P.Cleaning, _, _],
  [P.Credential]: [P.Cloning, _, _, _, _, _, P.Cleaning, _, _],
  [P.Cloning]: [_, P.Booting, _, _, _, _, P.Cleaning, _, _],
  [P.Booting]: [_, _, P.Launching, P.Cloning, _, _, P.Cleaning, _, _],
  [P.Launching]: [_, _, _, _, P.Idle, _, P.Cleaning, _, _],
  [P.Idle]: [_, _, _, _, _, P.Busy, P.Cleaning, _, _],
  [P.Busy]: [_, _, _, _, _, _, P.Cleaning, _, _],
  [P.Cleaning]: [_, _, _, _, _, _, _, P.Done, P.Failed],
  [P.Done]: [_, _, _, _, _, _, _, _, _],
  [P.Failed]: [_, _, _, _, _, _, _, _, _],
};
const COLUMNS = ['prepared', 'cloned', 'booted', 'boot-retry', 'launched', 'job-started', 'cleanup', 'succeeded', 'failed'] as const;

describe('runner phases', () => {
  it('the table covers every phase and every event', () => {
    expect(Object.keys(TABLE).sort()).toEqual([...PHASES].sort());
    expect([...RUNNER_EVENTS].sort()).toEqual([...COLUMNS].sort());
  });
  const cells = PHASES.flatMap((phase) => COLUMNS.map((event, i) => [phase, event, TABLE[phase][i]] as const));
  it.each(cells)('%s + %s → %s', (phase, event, want) => {
    expect(nextRunnerPhase(phase, event)).toBe(want);
  });
  it('a whole life follows the design: pull → clone → boot → launch → idle → busy → cleaning → done', () => {
    let phase: RunnerPhase = P.Pulling;
    const seen: string[] = [phase];
    for (const e of ['prepared', 'cloned', 'boot-retry', 'cloned', 'booted', 'launched', 'job-started', 'cleanup', 'succeeded'] as const) {
      phase = nextRunnerPhase(phase, e)!;
      seen.push(phase);
    }
    expect(seen).toEqual(['pulling', 'cloning', 'booting', 'cloning', 'booting', 'launching', 'idle', 'busy', 'cleaning', 'done']);
  });
  it.each(PHASES.map((p) => [p, p === P.Idle ? 'idle' : p === P.Busy ? 'busy' : p === P.Cleaning ? 'cleaning' : undefined] as const))(
    'the pool hears of %s as %s',
    (phase, want) => {
      expect(poolPhaseOf(phase)).toBe(want);
    },
  );
});

describe('how the wait for a job ends', () => {
  const timing = { maxJobMs: 60_000 };
  const now = 1_000_000;
  const started: JobStart = { kind: 'job-started', jobId: '42', startedAt: now - 5_000 };
  const cases: Array<[string, JobStart, Removal | undefined, boolean, unknown]> = [
    ['a job started', started, undefined, false, { kind: 'job', jobId: '42', deadline: now - 5_000 + 60_000 }],
    ['a job started (no start time: now)', { kind: 'job-started' }, undefined, false, { kind: 'job', jobId: undefined, deadline: now + 60_000 }],
    ['a job started though retiring (it runs)', started, undefined, true, { kind: 'job', jobId: '42', deadline: now - 5_000 + 60_000 }],
    ['the runner exited on its own', { kind: 'runner-exited' }, undefined, false, { kind: 'end', outcome: 'runner-exited', stopRunner: false }],
    ['idle timeout, deregistered', { kind: 'idle-timeout' }, 'removed', false, { kind: 'end', outcome: 'idle-timeout', stopRunner: true }],
    ['retired, deregistered', { kind: 'idle-timeout' }, 'removed', true, { kind: 'end', outcome: 'retired', stopRunner: true }],
    ['idle timeout, but a job just landed (422 busy)', { kind: 'idle-timeout' }, 'busy', false, { kind: 'job', deadline: now + 60_000 }],
    ['retired, but a job just landed (422 busy)', { kind: 'idle-timeout' }, 'busy', true, { kind: 'job', deadline: now + 60_000 }],
    ['idle timeout, registration already gone: its job is ending', { kind: 'idle-timeout' }, 'not-found', false, { kind: 'job', deadline: now + FINISHING_GRACE_MS }],
    ['retired, registration already gone', { kind: 'idle-timeout' }, 'not-found', true, { kind: 'job', deadline: now + FINISHING_GRACE_MS }],
  ];
  it.each(cases)('%s', (_why, start, removal, retiring, want) => {
    expect(afterJobWait(start, removal, retiring, now, timing)).toEqual(want);
  });
});

describe('boot retries and failures', () => {
  it.each([
    [1, 2, false, true],
    [2, 2, false, false],
    [1, 1, false, false],
    [1, 3, true, false],
  ])('attempt %i of %i (cancelled %s) → retry %s', (attempt, bootAttempts, cancelled, want) => {
    expect(retryBoot(attempt, { bootAttempts }, cancelled)).toBe(want);
  });
  it.each([
    [true, true, 'host-down'],
    [true, false, 'host-down'],
    [false, true, 'cancelled'],
    [false, false, 'failed'],
  ] as const)('host gone %s, cancelled %s → %s', (hostGone, cancelled, want) => {
    expect(outcomeOfFailure(hostGone, cancelled)).toBe(want);
  });
});
