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
import type { ImageSharedActivities } from '../activities/images.js';
import { errorMessage, FailureType } from '../core/failures.js';
import { assertSlug, catalogImageName, hostWorkflowId, runnerName as makeRunnerName, runnerWorkflowId, runToken } from '../core/names.js';
import {
  chooseRetirees,
  chooseRollout,
  countRunnerEnd,
  expireQueued,
  keptCount,
  nextPoolStep,
  placementOrder,
  poolTarget,
  trackRunner,
  validateScale,
  type TrackedRunnerEvent,
} from '../core/pool-policy.js';
import type { RunnerOutcome, RunnerSpec } from '../core/runner-spec.js';
import { RunnerPhase, SA_HOST, SA_PHASE, SA_POOL } from '../core/search-attributes.js';
import {
  drainPoolUpdate,
  imagePromotedSignal,
  jobProgressedSignal,
  jobQueuedSignal,
  poolStatusQuery,
  resumePoolUpdate,
  retireRunnerSignal,
  runnerEndedSignal,
  runnerPhaseChangedSignal,
  scalePoolUpdate,
  type PoolConfig,
  type PoolRunnerPhase,
  type PoolRunnerView,
  type PoolScale,
  type PoolState,
  type PoolStatus,
  type PoolTuning,
  type PoolWorkflowInput,
} from './api.js';
import { RunnerWorkflow } from './runner.js';

export { validateScale };

/** A pool whose image has no promoted build asks the catalog again after this (promotions also arrive by signal). */
const IMAGE_WAIT_MS = 60_000;

export function validatePoolConfig(config: PoolConfig): void {
  assertSlug('pool name', config.name);
  if (config.hosts.length === 0) throw new Error('hosts: give at least one host id');
  for (const h of config.hosts) assertSlug('host id', h);
  if (config.labels.length === 0) throw new Error('labels: give at least one label');
  validateScale({ size: config.size, minIdle: config.minIdle, max: config.max });
  if (!config.timing) throw new Error('timing: missing; resolve the pool config before starting it (core/defaults.ts)');
  if (!config.backoff) throw new Error('backoff: missing; resolve the pool config before starting it (core/defaults.ts)');
}

export async function PoolWorkflow(input: PoolWorkflowInput): Promise<PoolStatus> {
  const config: PoolConfig = { ...input.config };
  try {
    validatePoolConfig(config);
    if (!input.tuning) throw new Error('tuning: missing; resolve it before starting the pool (core/defaults.ts)');
  } catch (err) {
    throw ApplicationFailure.nonRetryable(errorMessage(err), FailureType.InvalidInput);
  }
  const tuning: PoolTuning = input.tuning;
  const state: PoolState = input.state ?? {
    draining: false,
    seq: 0,
    runners: [],
    retiring: [],
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
  // Runs recorded before retirements were carried have no list: nobody is retiring then.
  const retiring = new Set<string>(state.retiring ?? []);
  let blocked: string | undefined;
  let changed = false;
  const touch = () => {
    changed = true;
  };

  const fleet = proxyActivities<FleetSharedActivities>({
    startToCloseTimeout: '1 minute',
    retry: { initialInterval: '1s', maximumInterval: '30s', maximumAttempts: 10 },
  });

  const images = proxyActivities<ImageSharedActivities>({
    startToCloseTimeout: '1 minute',
    retry: { initialInterval: '1s', maximumInterval: '30s', maximumAttempts: 10 },
  });

  const count = (phase: PoolRunnerPhase) => [...runners.values()].filter((r) => r.phase === phase).length;
  const kept = () => keptCount([...runners.values()], retiring);
  const target = () =>
    poolTarget({
      draining: state.draining,
      busy: count('busy'),
      queuedJobs: Object.keys(state.queued).length,
      size: config.size,
      minIdle: config.minIdle,
      max: config.max,
    });
  /** Feed one event to a runner's state machine (core/pool-policy.ts); true when the pool must tell it to retire. */
  const track = (r: PoolRunnerView, event: TrackedRunnerEvent): boolean => {
    const { runner, signalRetire } = trackRunner({ phase: r.phase, retiring: retiring.has(r.workflowId) }, event);
    if (runner.phase !== r.phase) {
      r.phase = runner.phase;
      r.since = Date.now();
    }
    if (runner.retiring) retiring.add(r.workflowId);
    else retiring.delete(r.workflowId);
    return signalRetire;
  };
  const limitReached = () => config.maxRunners !== undefined && state.seq >= config.maxRunners;
  /** `image: catalog:NAME`: the pool runs the image's current build, and moves with it. */
  const follows = catalogImageName(config.image);
  const staleRunners = () => (state.image ? [...runners.values()].filter((r) => r.phase !== 'cleaning' && r.imageDigest !== state.image!.digest).length : 0);

  const status = (): PoolStatus => ({
    pool: config.name,
    config: { ...config },
    draining: state.draining,
    target: target(),
    counts: { starting: count('starting'), idle: count('idle'), busy: count('busy'), cleaning: count('cleaning') },
    retiring: retiring.size,
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
    ...(state.image ? { image: { ...state.image, staleRunners: staleRunners() } } : {}),
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
  setHandler(imagePromotedSignal, ({ image, ref, digest }) => {
    if (image !== follows || state.image?.digest === digest) return;
    log.info('pool moves onto a new image build', { pool: config.name, image, digest });
    state.image = { ref, digest };
    touch();
  });
  setHandler(jobQueuedSignal, ({ jobId }) => {
    if (state.queued[jobId] !== undefined || state.doneJobs.includes(jobId)) return;
    state.queued[jobId] = Date.now();
    touch();
  });
  setHandler(jobProgressedSignal, ({ jobId, action, runnerName }) => {
    delete state.queued[jobId];
    // The job went to one of ours: it is busy now, whatever its own (later) signal says.
    const r = action === 'in_progress' && runnerName ? [...runners.values()].find((x) => x.runnerName === runnerName) : undefined;
    if (r) track(r, { kind: 'job-taken' });
    if (!state.doneJobs.includes(jobId)) state.doneJobs = [...state.doneJobs, jobId].slice(-500);
    touch();
  });
  /** A runner's life is over as far as counting goes: failures and backoff, or a success. */
  const countEnd = (workflowId: string, outcome: RunnerOutcome, message: string | undefined) => {
    const counted = countRunnerEnd(state, outcome, config.backoff, Date.now());
    state.completed = counted.completed;
    state.failed = counted.failed;
    state.consecutiveFailures = counted.consecutiveFailures;
    state.backoffUntil = counted.backoffUntil;
    if (counted.delayMs !== undefined) {
      state.recentFailures = [...state.recentFailures, { workflowId, message: message ?? outcome, at: Date.now() }].slice(-10);
      log.warn('runner failed; backing off', { pool: config.name, workflowId, delayMs: counted.delayMs, message });
    }
  };
  setHandler(runnerPhaseChangedSignal, ({ workflowId, phase, failure }) => {
    const r = runners.get(workflowId);
    if (!r) return;
    const before = r.phase;
    track(r, { kind: 'reported', phase });
    if (failure && !r.endCounted) {
      r.endCounted = true;
      countEnd(workflowId, failure.outcome, failure.message);
    }
    if (r.phase !== before || failure) touch();
  });
  setHandler(runnerEndedSignal, ({ workflowId, outcome, message }) => {
    const r = runners.get(workflowId);
    if (!r) return;
    runners.delete(workflowId);
    retiring.delete(workflowId);
    if (!r.endCounted) countEnd(workflowId, outcome, message);
    touch();
  });

  /** Take a slot on the least-used host of the pool that grants one. */
  const placeRunner = async (): Promise<boolean> => {
    const hosts = placementOrder(config.hosts, [...runners.values()]);
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
        image: state.image?.ref ?? config.image,
        imageDigest: state.image?.digest ?? config.imageDigest,
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
      const imageDigest = state.image?.digest ?? config.imageDigest;
      runners.set(workflowId, { workflowId, runnerName, host, phase: 'starting', since: now, startedAt: now, ...(imageDigest ? { imageDigest } : {}) });
      return true;
    }
  };

  /** Retire idle runners above target (busy ones always finish; starting ones get there first). */
  const retireExcess = async () => {
    for (const id of chooseRetirees([...runners.values()], retiring, target())) {
      const r = runners.get(id);
      if (!r || !track(r, { kind: 'retire' })) continue;
      try {
        await getExternalWorkflowHandle(id).signal(retireRunnerSignal);
      } catch {
        // Already gone: its end signal (or the audit) removes it.
      }
    }
  };

  /** Idle runners on an older build of the image the pool follows: a few at a time, replaced on the current one. */
  const rollOut = async () => {
    if (!follows || state.draining) return;
    for (const id of chooseRollout([...runners.values()], retiring, state.image?.digest)) {
      const r = runners.get(id);
      if (!r || !track(r, { kind: 'retire' })) continue;
      log.info('recycling an idle runner onto the current image', { pool: config.name, workflowId: id, digest: state.image?.digest });
      try {
        await getExternalWorkflowHandle(id).signal(retireRunnerSignal);
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

  const carry = (): PoolState => ({ ...state, runners: [...runners.values()], retiring: [...retiring] });

  try {
    for (;;) {
      changed = false;
      state.queued = expireQueued(state.queued, Date.now(), tuning.queuedJobTtlMs);
      if (Date.now() - state.lastAuditAt >= tuning.auditIntervalMs) await audit();
      await retireExcess();
      await rollOut();
      if (follows && !state.image) {
        // No build to run yet: ask the catalog (it also tells the pool when one is promoted).
        const current = await images.currentImage({ image: follows });
        if (current) state.image = current;
      }
      const next = nextPoolStep({
        now: Date.now(),
        target: target(),
        kept: kept(),
        runners: runners.size,
        limitReached: limitReached(),
        backoffUntil: state.backoffUntil,
        consecutiveFailures: state.consecutiveFailures,
      });
      if (next.kind === 'finish') break;
      let waitMs: number | undefined;
      if (next.kind === 'place' && follows && !state.image) {
        blocked = `image ${follows} has no promoted build yet (ekiden image build ${follows})`;
        waitMs = IMAGE_WAIT_MS;
      } else if (next.kind === 'place') {
        if (await placeRunner()) continue; // see whether another one is needed
        waitMs = tuning.hostRetryMs; // placeRunner said why it is blocked
      } else {
        waitMs = next.waitMs;
        blocked = next.blocked;
      }

      if (workflowInfo().historyLength > tuning.maxHistoryEvents || workflowInfo().continueAsNewSuggested) {
        await condition(allHandlersFinished);
        await continueAsNew<typeof PoolWorkflow>({ config, tuning, state: carry() });
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
