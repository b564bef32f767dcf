/**
 * PoolWorkflow `pool/<name>`: keeps a pool's runners alive as child RunnerWorkflows.
 *
 *   target = draining ? 0 : min(max, max(size, busy + queued jobs + minIdle))
 *
 * - Below target: take a slot on one of the pool's hosts (HostWorkflow `acquireSlot`, so
 *   pools sharing a host never exceed its capacity; hosts that are full, down or unknown
 *   say why and the pool shows it as `blocked`) and start a runner there.
 * - Above target: idle runners are retired (deregistered first: a job that just landed
 *   still runs); busy runners always finish.
 * - Runners that keep failing are replaced with exponential backoff, so a bad image or
 *   token never becomes a tight loop against GitHub or the hypervisor.
 * - Runners are started abandoned (they outlive a pool run) and report their phases and
 *   their end by signal, so continue-as-new hands everything to the next run untouched.
 * - Cancelling the pool (`ekiden pool delete`) cancels every runner and waits for their
 *   cleanup.
 */
import {
  ActivityFailure,
  allHandlersFinished,
  ApplicationFailure,
  CancellationScope,
  condition,
  continueAsNew,
  getExternalWorkflowHandle,
  isCancellation,
  log,
  ParentClosePolicy,
  proxyActivities,
  setHandler,
  startChild,
  workflowInfo,
} from '@temporalio/workflow';
import { WorkflowExecutionAlreadyStartedError } from '@temporalio/common';
import type { FleetSharedActivities } from '../activities/fleet.js';
import { assertSlug, hostWorkflowId, runnerName as makeRunnerName, runnerWorkflowId, runToken } from '../core/names.js';
import type { RunnerSpec } from '../core/runner-spec.js';
import { RunnerPhase, SA_HOST, SA_PHASE, SA_POOL } from '../core/search-attributes.js';
import {
  drainPoolUpdate,
  jobProgressSignal,
  jobQueuedSignal,
  poolStatusQuery,
  resumePoolUpdate,
  retireRunnerSignal,
  runnerEndedSignal,
  runnerPhaseSignal,
  scalePoolUpdate,
  type PoolConfig,
  type PoolFailure,
  type PoolRunnerPhase,
  type PoolRunnerView,
  type PoolScale,
  type PoolStatus,
} from './api.js';
import { RunnerWorkflow } from './runner.js';

export interface PoolTuning {
  /** Continue-as-new after this many history events. */
  maxHistoryEvents: number;
  /** A queued job nobody reported on is forgotten after this. */
  queuedJobTtlMs: number;
  /** When every host refuses a slot, ask again after this. */
  hostRetryMs: number;
  /** Check that runners the pool still counts are really open, this often. */
  auditIntervalMs: number;
}

export const DEFAULT_POOL_TUNING: PoolTuning = {
  maxHistoryEvents: 5_000,
  queuedJobTtlMs: 30 * 60_000,
  hostRetryMs: 10_000,
  auditIntervalMs: 5 * 60_000,
};

/** Everything a pool remembers, carried across continue-as-new. */
export interface PoolState {
  draining: boolean;
  seq: number;
  runners: PoolRunnerView[];
  /** Queued job id → epoch ms it was queued. */
  queued: Record<string, number>;
  /** Jobs already picked up or finished (late `queued` redeliveries are ignored). */
  doneJobs: string[];
  completed: number;
  failed: number;
  consecutiveFailures: number;
  backoffUntil?: number;
  recentFailures: PoolFailure[];
  runs: number;
  lastAuditAt: number;
}

export interface PoolWorkflowInput {
  config: PoolConfig;
  tuning?: Partial<PoolTuning>;
  state?: PoolState;
}

const DEFAULT_BACKOFF = { initialMs: 5_000, maxMs: 5 * 60_000 };

/** The one check of a pool's numbers, used at start and by the scale validator. */
export function validateScale(c: { size: number; minIdle: number; max: number }): void {
  for (const [field, v] of Object.entries(c)) {
    if (!Number.isInteger(v) || v < 0) throw new Error(`${field}: ${v} is not a whole number ≥ 0`);
  }
  if (c.max < 1) throw new Error(`max: ${c.max} must be at least 1`);
  if (c.size > c.max) throw new Error(`size: ${c.size} is above max ${c.max}; raise max too`);
  if (c.minIdle > c.max) throw new Error(`minIdle: ${c.minIdle} is above max ${c.max}; raise max too`);
}

export function validatePoolConfig(config: PoolConfig): void {
  assertSlug('pool name', config.name);
  if (config.hosts.length === 0) throw new Error('hosts: give at least one host id');
  for (const h of config.hosts) assertSlug('host id', h);
  if (config.labels.length === 0) throw new Error('labels: give at least one label');
  validateScale({ size: config.size, minIdle: config.minIdle, max: config.max });
}

export async function PoolWorkflow(input: PoolWorkflowInput): Promise<PoolStatus> {
  const config: PoolConfig = { ...input.config };
  try {
    validatePoolConfig(config);
  } catch (err) {
    throw ApplicationFailure.nonRetryable((err as Error).message, 'InvalidInput');
  }
  const tuning: PoolTuning = { ...DEFAULT_POOL_TUNING, ...input.tuning };
  const backoff = config.backoff ?? DEFAULT_BACKOFF;
  const state: PoolState = input.state ?? {
    draining: false,
    seq: 0,
    runners: [],
    queued: {},
    doneJobs: [],
    completed: 0,
    failed: 0,
    consecutiveFailures: 0,
    recentFailures: [],
    runs: 0,
    lastAuditAt: Date.now(),
  };
  state.runs++;
  const runners = new Map(state.runners.map((r) => [r.workflowId, r]));
  const retiring = new Set<string>();
  let blocked: string | undefined;
  let changed = false;
  const touch = () => {
    changed = true;
  };

  const fleet = proxyActivities<FleetSharedActivities>({
    startToCloseTimeout: '1 minute',
    retry: { initialInterval: '1s', maximumInterval: '30s', maximumAttempts: 10 },
  });

  const count = (phase: PoolRunnerPhase) => [...runners.values()].filter((r) => r.phase === phase).length;
  const live = () => [...runners.values()].filter((r) => r.phase !== 'cleaning');
  /** Live runners the pool keeps (not being retired). */
  const kept = () => live().filter((r) => !retiring.has(r.workflowId)).length;
  const target = () => {
    if (state.draining) return 0;
    const demand = count('busy') + Object.keys(state.queued).length + config.minIdle;
    return Math.min(config.max, Math.max(config.size, demand));
  };
  const limitReached = () => config.maxRunners !== undefined && state.seq >= config.maxRunners;

  const status = (): PoolStatus => ({
    pool: config.name,
    config: { ...config },
    draining: state.draining,
    target: target(),
    counts: { starting: count('starting'), idle: count('idle'), busy: count('busy'), cleaning: count('cleaning') },
    runners: [...runners.values()].map((r) => ({ ...r })),
    pendingJobs: Object.keys(state.queued).length,
    started: state.seq,
    completed: state.completed,
    failed: state.failed,
    consecutiveFailures: state.consecutiveFailures,
    backoffUntil: state.backoffUntil && state.backoffUntil > Date.now() ? state.backoffUntil : undefined,
    blocked,
    recentFailures: [...state.recentFailures],
    runs: state.runs,
  });

  setHandler(poolStatusQuery, status);
  setHandler(
    scalePoolUpdate,
    (scale: PoolScale) => {
      if (scale.size !== undefined) config.size = scale.size;
      if (scale.minIdle !== undefined) config.minIdle = scale.minIdle;
      if (scale.max !== undefined) config.max = scale.max;
      log.info('pool scaled', { pool: config.name, size: config.size, minIdle: config.minIdle, max: config.max });
      touch();
      return status();
    },
    {
      validator: (scale: PoolScale) => {
        if (scale.size === undefined && scale.minIdle === undefined && scale.max === undefined) {
          throw new Error('give at least one of size, minIdle, max');
        }
        validateScale({ size: scale.size ?? config.size, minIdle: scale.minIdle ?? config.minIdle, max: scale.max ?? config.max });
      },
    },
  );
  setHandler(drainPoolUpdate, () => {
    state.draining = true;
    log.info('pool draining', { pool: config.name });
    touch();
    return status();
  });
  setHandler(resumePoolUpdate, () => {
    state.draining = false;
    log.info('pool resumed', { pool: config.name });
    touch();
    return status();
  });
  setHandler(jobQueuedSignal, ({ jobId }) => {
    if (state.queued[jobId] !== undefined || state.doneJobs.includes(jobId)) return;
    state.queued[jobId] = Date.now();
    touch();
  });
  setHandler(jobProgressSignal, ({ jobId, action, runnerName }) => {
    delete state.queued[jobId];
    // The job went to one of ours: it is busy now, whatever its own (later) signal says.
    const r = action === 'in_progress' && runnerName ? [...runners.values()].find((x) => x.runnerName === runnerName) : undefined;
    if (r && r.phase !== 'cleaning' && r.phase !== 'busy') {
      r.phase = 'busy';
      r.since = Date.now();
      retiring.delete(r.workflowId);
    }
    if (!state.doneJobs.includes(jobId)) state.doneJobs = [...state.doneJobs, jobId].slice(-500);
    touch();
  });
  setHandler(runnerPhaseSignal, ({ workflowId, phase }) => {
    const r = runners.get(workflowId);
    if (!r || r.phase === phase || r.phase === 'cleaning') return;
    if (r.phase === 'busy' && phase === 'idle') return; // the webhook was first
    if (phase === 'busy') retiring.delete(workflowId);
    r.phase = phase;
    r.since = Date.now();
    touch();
  });
  setHandler(runnerEndedSignal, ({ workflowId, outcome, failed, message }) => {
    if (!runners.delete(workflowId)) return;
    retiring.delete(workflowId);
    if (failed) {
      state.failed++;
      state.consecutiveFailures++;
      state.recentFailures = [...state.recentFailures, { workflowId, message: message ?? outcome, at: Date.now() }].slice(-10);
      const delay = Math.min(backoff.maxMs, backoff.initialMs * 2 ** (state.consecutiveFailures - 1));
      state.backoffUntil = Date.now() + delay;
      log.warn('runner failed; backing off', { pool: config.name, workflowId, delayMs: delay, message });
    } else {
      state.completed++;
      if (outcome === 'completed' || outcome === 'retired' || outcome === 'idle-timeout') state.consecutiveFailures = 0;
    }
    touch();
  });

  /** Take a slot on the least-used host of the pool that grants one. */
  const placeRunner = async (): Promise<boolean> => {
    const used = (h: string) => [...runners.values()].filter((r) => r.host === h).length;
    const hosts = [...config.hosts].sort((a, b) => used(a) - used(b) || a.localeCompare(b));
    const reasons: string[] = [];
    for (;;) {
      const workflowId = runnerWorkflowId(config.name, state.seq + 1);
      let host: string | undefined;
      for (const h of hosts) {
        const grant = await fleet.acquireHostSlot({ host: h, workflowId, pool: config.name });
        if (grant.granted) {
          host = h;
          break;
        }
        reasons.push(grant.reason);
      }
      if (!host) {
        blocked = reasons.join('; ');
        return false;
      }
      blocked = undefined;
      const spec: RunnerSpec = {
        pool: config.name,
        host,
        image: config.image,
        imageDigest: config.imageDigest,
        labels: config.labels,
        runnerGroupId: config.runnerGroupId,
        cpu: config.cpu,
        memoryMb: config.memoryMb,
        runnerDir: config.runnerDir,
        credential: config.credential,
      };
      state.seq++;
      let child;
      try {
        child = await startChild(RunnerWorkflow, {
          workflowId,
          args: [{ spec, timing: config.timing, slot: { hostWorkflowId: hostWorkflowId(host) } }],
          // Runners outlive a pool run (continue-as-new); deleting the pool cancels them itself.
          parentClosePolicy: ParentClosePolicy.ABANDON,
          typedSearchAttributes: [
            { key: SA_POOL, value: config.name },
            { key: SA_HOST, value: host },
            { key: SA_PHASE, value: RunnerPhase.Pulling },
          ],
        });
      } catch (err) {
        // An id left by an earlier pool of the same name: take the next one.
        if (err instanceof WorkflowExecutionAlreadyStartedError) continue;
        throw err;
      }
      const now = Date.now();
      const runnerName = makeRunnerName({ pool: config.name, token: runToken(child.firstExecutionRunId) });
      runners.set(workflowId, { workflowId, runnerName, host, phase: 'starting', since: now, startedAt: now });
      return true;
    }
  };

  /** Retire idle runners above target (busy ones always finish; starting ones get there first). */
  const retireExcess = async () => {
    const excess = kept() - target();
    if (excess <= 0) return;
    const idle = [...runners.values()]
      .filter((r) => r.phase === 'idle' && !retiring.has(r.workflowId))
      // Newest first: a job that just landed usually went to a runner that waited longest.
      .sort((a, b) => b.since - a.since)
      .slice(0, excess);
    for (const r of idle) {
      retiring.add(r.workflowId);
      try {
        await getExternalWorkflowHandle(r.workflowId).signal(retireRunnerSignal);
      } catch {
        // Already gone: its end signal (or the audit) removes it.
      }
    }
  };

  /** Runners the pool counts but whose workflow closed without telling it. */
  const audit = async () => {
    state.lastAuditAt = Date.now();
    if (runners.size === 0) return;
    for (const id of await fleet.closedWorkflows({ workflowIds: [...runners.keys()] })) {
      log.warn('runner closed without reporting; dropped', { pool: config.name, workflowId: id });
      runners.delete(id);
      retiring.delete(id);
    }
  };

  const expireQueued = () => {
    const cutoff = Date.now() - tuning.queuedJobTtlMs;
    for (const [id, at] of Object.entries(state.queued)) if (at < cutoff) delete state.queued[id];
  };

  const carry = (): PoolState => ({ ...state, runners: [...runners.values()] });

  try {
    for (;;) {
      changed = false;
      expireQueued();
      if (Date.now() - state.lastAuditAt >= tuning.auditIntervalMs) await audit();
      await retireExcess();
      if (limitReached() && runners.size === 0) break;

      const backingOff = state.backoffUntil !== undefined && Date.now() < state.backoffUntil;
      let waitMs: number | undefined;
      if (kept() < target() && !limitReached()) {
        if (backingOff) {
          blocked = `backing off after ${state.consecutiveFailures} failed runners`;
          waitMs = state.backoffUntil! - Date.now();
        } else if (await placeRunner()) {
          continue; // see whether another one is needed
        } else {
          waitMs = tuning.hostRetryMs;
        }
      } else {
        blocked = undefined;
      }

      if (workflowInfo().historyLength > tuning.maxHistoryEvents || workflowInfo().continueAsNewSuggested) {
        await condition(allHandlersFinished);
        await continueAsNew<typeof PoolWorkflow>({ config, tuning: input.tuning, state: carry() });
      }
      const untilAudit = Math.max(1, state.lastAuditAt + tuning.auditIntervalMs - Date.now());
      await condition(() => changed, Math.min(waitMs ?? untilAudit, untilAudit));
    }
  } catch (err) {
    if (!isCancellation(err) && !(err instanceof ActivityFailure && isCancellation(err.cause))) throw err;
    // Deleted: cancel every runner (each cleans up) and wait for them to end.
    await CancellationScope.nonCancellable(async () => {
      state.draining = true;
      for (const id of runners.keys()) {
        try {
          await getExternalWorkflowHandle(id).cancel();
        } catch {
          // Already closed.
        }
      }
      while (runners.size > 0) {
        if (!(await condition(() => runners.size === 0, 30_000))) await audit();
      }
    });
    throw err;
  }
  await condition(allHandlersFinished);
  return status();
}
