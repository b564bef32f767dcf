/**
 * Every default of a workflow input, in one place, and the functions that fill them in. They
 * are called at the edge that starts a workflow (config parsing, the CLI, `ekiden up`, the
 * host worker, the pool starting its runners from its own resolved config), so a workflow's
 * input carries every value it runs with: changing a default here changes new workflows
 * only, never the control flow of one already in flight. Lint forbids workflow code to
 * import this module. Pure module.
 */
import type { DriverKind, HostTiming, PoolBackoff, PoolConfig, PoolTuning, PoolWorkflowInput } from '../workflows/api.js';
import type { RunnerTiming } from './runner-spec.js';

export const DEFAULT_RUNNER_TIMING: Readonly<RunnerTiming> = {
  pullTimeoutMs: 60 * 60_000,
  bootTimeoutMs: 5 * 60_000,
  idleTimeoutMs: 60 * 60_000,
  maxJobMs: 6 * 60 * 60_000,
  heartbeatTimeoutMs: 30_000,
  hostCleanupTimeoutMs: 30 * 60_000,
  deregisterTimeoutMs: 2 * 60 * 60_000,
  bootAttempts: 2,
};

export const DEFAULT_POOL_TUNING: Readonly<PoolTuning> = {
  maxHistoryEvents: 5_000,
  queuedJobTtlMs: 30 * 60_000,
  hostRetryMs: 10_000,
  auditIntervalMs: 5 * 60_000,
};

export const DEFAULT_BACKOFF: Readonly<PoolBackoff> = { initialMs: 5_000, maxMs: 5 * 60_000 };

export const DEFAULT_HOST_TIMING: Readonly<HostTiming> = {
  pingIntervalMs: 15_000,
  downAfterMs: 60_000,
  watchMs: 5 * 60_000,
  reconcileIntervalMs: 10 * 60_000,
  confirmDelayMs: 5_000,
  maxHistoryEvents: 2_000,
};

/** Only the keys a defaults table knows, so a stray field never rides along in an input. */
function fill<T extends object>(defaults: Readonly<T>, given: Partial<T> | undefined): T {
  const out = { ...defaults } as T;
  for (const key of Object.keys(defaults) as Array<keyof T>) {
    const v = given?.[key];
    if (v !== undefined) out[key] = v as T[keyof T];
  }
  return out;
}

export const resolveRunnerTiming = (given?: Partial<RunnerTiming>): RunnerTiming => fill(DEFAULT_RUNNER_TIMING, given);
export const resolvePoolTuning = (given?: Partial<PoolTuning>): PoolTuning => fill(DEFAULT_POOL_TUNING, given);
export const resolveBackoff = (given?: Partial<PoolBackoff>): PoolBackoff => fill(DEFAULT_BACKOFF, given);
export const resolveHostTiming = (given?: Partial<HostTiming>): HostTiming => fill(DEFAULT_HOST_TIMING, given);

/** VMs a host runs at once when its config does not say: tart 2 (Apple's limit), qemu half the CPUs (at least 1), fake 4. */
export function defaultCapacity(kind: DriverKind, cpuCount: number): number {
  switch (kind) {
    case 'tart':
      return 2;
    case 'fake':
      return 4;
    case 'qemu':
      return Math.max(1, Math.floor(cpuCount / 2));
  }
}

/** A pool as written by an operator: its timing and backoff may be partial or absent. */
export type PoolSpec = Omit<PoolConfig, 'timing' | 'backoff'> & { timing?: Partial<RunnerTiming>; backoff?: Partial<PoolBackoff> };

/** A pool's config with every default filled in. */
export function resolvePoolConfig(spec: PoolSpec): PoolConfig {
  return { ...spec, timing: resolveRunnerTiming(spec.timing), backoff: resolveBackoff(spec.backoff) };
}

/** The input a PoolWorkflow starts with: the resolved config and tuning. */
export function poolWorkflowInput(spec: PoolSpec, tuning?: Partial<PoolTuning>): PoolWorkflowInput {
  return { config: resolvePoolConfig(spec), tuning: resolvePoolTuning(tuning) };
}
