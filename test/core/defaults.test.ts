/**
 * Defaults are filled in once, where a workflow starts (core/defaults.ts): given values win,
 * missing ones come from the table, and nothing outside the table rides along.
 */
import { describe, expect, it } from 'vitest';
import {
  DEFAULT_BACKOFF,
  DEFAULT_HOST_TIMING,
  DEFAULT_POOL_TUNING,
  DEFAULT_RUNNER_TIMING,
  defaultCapacity,
  poolWorkflowInput,
  resolveHostTiming,
  resolvePoolConfig,
  resolveRunnerTiming,
} from '../../core/defaults.js';

const spec = { name: 'ios', hosts: ['mac-1'], image: 'img', labels: ['self-hosted'], runnerGroupId: 1, runnerDir: 'actions-runner', credential: 'jit' as const, size: 1, minIdle: 0, max: 2 };

describe('defaults', () => {
  it('fill what is missing and keep what is given', () => {
    expect(resolveRunnerTiming()).toEqual(DEFAULT_RUNNER_TIMING);
    expect(resolveRunnerTiming({ idleTimeoutMs: 5, bootAttempts: 3 })).toEqual({ ...DEFAULT_RUNNER_TIMING, idleTimeoutMs: 5, bootAttempts: 3 });
    expect(resolveHostTiming({ downAfterMs: 1 })).toEqual({ ...DEFAULT_HOST_TIMING, downAfterMs: 1 });
  });
  it('an undefined value is a missing one; unknown keys are dropped', () => {
    expect(resolveRunnerTiming({ idleTimeoutMs: undefined, bogus: 1 } as never)).toEqual(DEFAULT_RUNNER_TIMING);
  });
  it('a pool spec becomes a whole workflow input', () => {
    const input = poolWorkflowInput({ ...spec, timing: { maxJobMs: 10 } }, { hostRetryMs: 7 });
    expect(input.config).toEqual({ ...spec, timing: { ...DEFAULT_RUNNER_TIMING, maxJobMs: 10 }, backoff: DEFAULT_BACKOFF });
    expect(input.tuning).toEqual({ ...DEFAULT_POOL_TUNING, hostRetryMs: 7 });
    expect(resolvePoolConfig({ ...spec, backoff: { initialMs: 1 } }).backoff).toEqual({ ...DEFAULT_BACKOFF, initialMs: 1 });
  });
  it('the tables are frozen in spirit: resolving never changes them', () => {
    const before = JSON.stringify(DEFAULT_RUNNER_TIMING);
    const t = resolveRunnerTiming();
    t.idleTimeoutMs = 1;
    expect(JSON.stringify(DEFAULT_RUNNER_TIMING)).toBe(before);
  });
  it.each([
    ['tart', 16, 2],
    ['fake', 16, 4],
    ['qemu', 16, 8],
    ['qemu', 3, 1],
    ['qemu', 1, 1],
  ] as const)('capacity of a %s host with %i CPUs: %i', (kind, cpus, want) => {
    expect(defaultCapacity(kind, cpus)).toBe(want);
  });
});
