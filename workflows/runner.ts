/**
 * RunnerWorkflow: the life of one ephemeral runner.
 *
 *   pull image → credential → clone → boot → launch → await job → deregister → stop → delete
 *
 * VM and SSH steps run on the owning host's task queue; deregistration runs on the shared
 * queue so a dead host never blocks it. Cleanup runs on every exit path in a
 * non-cancellable scope, GitHub side and host side independently.
 */
import {
  ActivityCancellationType,
  ActivityFailure,
  ApplicationFailure,
  CancellationScope,
  condition,
  TimeoutFailure,
  defineQuery,
  defineSignal,
  getExternalWorkflowHandle,
  isCancellation,
  log,
  proxyActivities,
  setHandler,
  upsertSearchAttributes,
  workflowInfo,
  type ActivityOptions,
  type SignalDefinition,
} from '@temporalio/workflow';
import type { GitHubActivities } from '../activities/github.js';
import type { HostActivities } from '../activities/host.js';
import { FailureType } from '../core/failures.js';
import { hostTaskQueue, runnerName as makeRunnerName, runToken, vmName as makeVmName } from '../core/names.js';
import {
  DEFAULT_TIMING,
  type RunnerOutcome,
  type RunnerResult,
  type RunnerStatus,
  type RunnerTiming,
  type RunnerWorkflowInput,
} from '../core/runner-spec.js';
import { RunnerPhase, SA_JOB, SA_PHASE, SA_RUNNER } from '../core/search-attributes.js';
import {
  hostDownSignal,
  releaseSlotSignal,
  retireRunnerSignal,
  runnerEndedSignal,
  runnerPhaseSignal,
  type PoolRunnerPhase,
} from './api.js';

export const runnerStatusQuery = defineQuery<RunnerStatus>('runnerStatusQuery');
/** Sent by the webhook receiver when GitHub reports the runner's job (job id for the UI). */
export const jobAssignedSignal = defineSignal<[{ jobId: string }]>('jobAssignedSignal');

const ms = (n: number) => `${Math.max(1, Math.round(n))} ms`;

function hostActivities(host: string, timing: RunnerTiming) {
  const base: ActivityOptions = {
    taskQueue: hostTaskQueue(host),
    // Wait for a cancelled host step to really stop before cleanup touches the same VM.
    cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
    heartbeatTimeout: ms(timing.heartbeatTimeoutMs),
    retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '30s', nonRetryableErrorTypes: [FailureType.InvalidInput] },
  };
  const quick = { ...base, startToCloseTimeout: '2 minutes', scheduleToCloseTimeout: ms(timing.hostCleanupTimeoutMs) };
  return {
    pull: proxyActivities<HostActivities>({ ...base, startToCloseTimeout: ms(timing.pullTimeoutMs), retry: { ...base.retry, maximumAttempts: 5 } }),
    credential: proxyActivities<HostActivities>({ ...base, startToCloseTimeout: '1 minute', retry: { ...base.retry, initialInterval: '2s', maximumInterval: '2 minutes', maximumAttempts: 8 } }),
    clone: proxyActivities<HostActivities>({ ...quick, startToCloseTimeout: '10 minutes', retry: { ...base.retry, maximumAttempts: 5 } }),
    boot: proxyActivities<HostActivities>({ ...base, startToCloseTimeout: ms(timing.bootTimeoutMs + 30_000), retry: { ...base.retry, maximumAttempts: 3 } }),
    launch: proxyActivities<HostActivities>({ ...base, startToCloseTimeout: '2 minutes', retry: { ...base.retry, maximumAttempts: 5 } }),
    // The await steps carry absolute deadlines, so a retry after a worker crash keeps them.
    await: proxyActivities<HostActivities>({ ...base, startToCloseTimeout: ms(timing.idleTimeoutMs + timing.maxJobMs + 60_000) }),
    cleanup: proxyActivities<HostActivities>(quick),
    // Logs are a courtesy: never let them hold up deleting the VM.
    logs: proxyActivities<HostActivities>({
      ...base,
      startToCloseTimeout: '1 minute',
      scheduleToCloseTimeout: ms(Math.min(timing.hostCleanupTimeoutMs, 2 * 60_000)),
      retry: { ...base.retry, maximumAttempts: 2 },
    }),
  };
}

function githubActivities(timing: RunnerTiming) {
  return proxyActivities<GitHubActivities>({
    // The workflow's own queue: every worker serving Ekiden workflows also runs GitHub calls.
    taskQueue: workflowInfo().taskQueue,
    startToCloseTimeout: '1 minute',
    heartbeatTimeout: ms(timing.heartbeatTimeoutMs),
    scheduleToCloseTimeout: ms(timing.deregisterTimeoutMs),
    retry: { initialInterval: '2s', backoffCoefficient: 2, maximumInterval: '1 minute' },
  });
}

function failureType(err: unknown): string | undefined {
  const cause = err instanceof ActivityFailure ? err.cause : err;
  return cause instanceof ApplicationFailure ? (cause.type ?? undefined) : undefined;
}

function failureMessage(err: unknown): string {
  const cause = err instanceof ActivityFailure && err.cause ? err.cause : err;
  return cause instanceof Error ? cause.message : String(err);
}

/** Signal another workflow; a closed or missing one is not this runner's problem. */
async function signalQuietly<Args extends unknown[]>(workflowId: string, def: SignalDefinition<Args>, ...args: Args): Promise<void> {
  try {
    await getExternalWorkflowHandle(workflowId).signal(def, ...args);
  } catch (err) {
    log.info('could not signal', { workflowId, signal: def.name, message: failureMessage(err) });
  }
}

/** The pool's view of a runner phase (it only tells idle, busy and cleaning apart). */
const POOL_PHASE: Partial<Record<RunnerPhase, PoolRunnerPhase>> = {
  [RunnerPhase.Idle]: 'idle',
  [RunnerPhase.Busy]: 'busy',
  [RunnerPhase.Cleaning]: 'cleaning',
};

export async function RunnerWorkflow(input: RunnerWorkflowInput): Promise<RunnerResult> {
  const { spec } = input;
  const timing: RunnerTiming = { ...DEFAULT_TIMING, ...input.timing };
  const info = workflowInfo();
  const token = runToken(info.firstExecutionRunId);
  const runnerName = makeRunnerName({ pool: spec.pool, token });
  const host = hostActivities(spec.host, timing);
  const github = githubActivities(timing);

  const vmNames: string[] = [];
  let runnerId: number | undefined;
  let credentialRequested = false;
  let launched = false;
  let logsCollected = false;
  const destroyed = new Set<string>();
  let jobId: string | undefined;
  let outcome: RunnerOutcome = 'failed';
  const status: RunnerStatus = { phase: RunnerPhase.Pulling, runnerName, host: spec.host, pool: spec.pool, since: Date.now() };
  // A runner started by a pool tells it about the phases it schedules by (and its end).
  const poolId = info.parent?.workflowId;

  const setPhase = (phase: RunnerPhase) => {
    status.phase = phase;
    status.since = Date.now();
    upsertSearchAttributes([{ key: SA_PHASE, value: phase }]);
    const poolPhase = POOL_PHASE[phase];
    if (poolId && poolPhase) void signalQuietly(poolId, runnerPhaseSignal, { workflowId: info.workflowId, phase: poolPhase });
  };
  const setJob = (id: string | undefined) => {
    if (!id || id === jobId) return;
    jobId = id;
    status.jobId = id;
    upsertSearchAttributes([{ key: SA_JOB, value: id }]);
  };
  setHandler(runnerStatusQuery, () => ({ ...status }));
  setHandler(jobAssignedSignal, ({ jobId: id }) => setJob(id));
  // The pool no longer needs this runner: give up waiting for a job (a busy runner ignores it).
  let retire = false;
  let idleScope: CancellationScope | undefined;
  setHandler(retireRunnerSignal, () => {
    retire = true;
    idleScope?.cancel();
  });
  // The host stopped answering: end now, clean up on GitHub only, leave the VM to reconciliation.
  let hostGone = false;
  const lifecycle = new CancellationScope();
  setHandler(hostDownSignal, () => {
    hostGone = true;
    lifecycle.cancel();
  });
  upsertSearchAttributes([{ key: SA_RUNNER, value: runnerName }]);
  setPhase(RunnerPhase.Pulling);

  let failure: unknown;
  try {
    const living = lifecycle.run(live);
    // A dead host never acknowledges the cancellation of its steps: do not wait for it.
    living.catch(() => undefined);
    await Promise.race([
      living,
      condition(() => hostGone).then(() => {
        throw ApplicationFailure.nonRetryable(`host ${spec.host} stopped answering`, FailureType.HostDown);
      }),
    ]);
  } catch (err) {
    failure = err;
    outcome = hostGone ? 'host-down' : isCancellation(err) ? 'cancelled' : 'failed';
  }
  async function live(): Promise<void> {
    // Image and credential do not depend on each other: fetch both at once.
    credentialRequested = true;
    const [, credential] = await Promise.all([
      host.pull.ensureImage({ image: spec.image, digest: spec.imageDigest }),
      host.credential.obtainRunnerCredential({ runnerName, labels: spec.labels, runnerGroupId: spec.runnerGroupId, mode: spec.credential }),
    ]);
    runnerId = credential.runnerId;
    status.runnerId = runnerId;

    for (let attempt = 1; ; attempt++) {
      const vm = makeVmName({ pool: spec.pool, token, attempt });
      vmNames.push(vm);
      status.vmName = vm;
      setPhase(RunnerPhase.Cloning);
      await host.clone.cloneVm({ image: spec.image, vmName: vm, cpu: spec.cpu, memoryMb: spec.memoryMb });
      setPhase(RunnerPhase.Booting);
      try {
        await host.boot.bootVm({ vmName: vm, bootTimeoutMs: timing.bootTimeoutMs });
        break;
      } catch (err) {
        if (isCancellation(err) || attempt >= timing.bootAttempts) throw err;
        log.warn('boot failed; trying a fresh VM', { vm, attempt, type: failureType(err) });
        if (await destroyVm(vm)) destroyed.add(vm);
      }
    }
    const vm = status.vmName!;

    setPhase(RunnerPhase.Launching);
    launched = true; // set before the call: a launch that times out may still have started it
    await host.launch.launchRunner({ vmName: vm, runnerName, runnerDir: spec.runnerDir });

    setPhase(RunnerPhase.Idle);
    let start: Awaited<ReturnType<HostActivities['awaitJobStart']>> = { kind: 'idle-timeout' };
    if (!retire) {
      idleScope = new CancellationScope();
      try {
        start = await idleScope.run(() =>
          host.await.awaitJobStart({ vmName: vm, runnerDir: spec.runnerDir, idleDeadline: Date.now() + timing.idleTimeoutMs }),
        );
      } catch (err) {
        // Retired while waiting: the wait ended one way or another; deregistration decides.
        if (!retire || lifecycle.consideredCancelled) throw err;
      } finally {
        idleScope = undefined;
      }
    }
    let startedAt = start.startedAt;
    let jobLanded = false;
    let finishingDeadline: number | undefined;
    if (start.kind === 'idle-timeout') {
      // Take the runner off GitHub first, so no job lands on a runner we are about to destroy.
      const removed = await github.removeRunner({ runnerId, runnerName, allowBusy: true });
      if (removed === 'removed') {
        outcome = retire ? 'retired' : 'idle-timeout';
        await host.cleanup.stopGuestRunner({ vmName: vm, runnerDir: spec.runnerDir });
      } else {
        // 'busy': a job arrived just as we gave up on it, let it run. 'not-found': an ephemeral
        // registration is gone only once its job ended, so the runner is about to exit.
        jobLanded = true;
        startedAt = Date.now();
        if (removed === 'not-found') finishingDeadline = Date.now() + 2 * 60_000;
      }
    } else if (start.kind === 'runner-exited') {
      outcome = 'runner-exited';
    }
    if (start.kind === 'job-started' || jobLanded) {
      setJob(start.jobId);
      setPhase(RunnerPhase.Busy);
      const exit = await host.await.awaitRunnerExit({
        vmName: vm,
        runnerName,
        runnerDir: spec.runnerDir,
        jobDeadline: finishingDeadline ?? (startedAt ?? Date.now()) + timing.maxJobMs,
      });
      outcome = exit.kind === 'exited' ? 'completed' : 'job-timeout';
      logsCollected = exit.logsCollected;
    }
  }

  // Cleanup on every path. GitHub side and host side run independently: a dead host must not
  // keep a registration alive, and a GitHub outage must not keep a VM alive.
  const leftovers: string[] = [];
  await CancellationScope.nonCancellable(async () => {
    setPhase(RunnerPhase.Cleaning);
    const githubSide = async () => {
      if (!credentialRequested) return;
      try {
        await github.removeRunner({ runnerId, runnerName });
      } catch (err) {
        leftovers.push(`github runner ${runnerName}`);
        log.error('deregistration gave up', { runner: runnerName, type: failureType(err) });
      }
    };
    const hostSide = async () => {
      // Once a host step times out waiting for the host, the host is taken as gone: the rest
      // is left for reconciliation instead of waiting out each step's timeout in turn.
      let hostAnswers = !hostGone;
      const onHost = async (what: string | undefined, step: () => Promise<unknown>): Promise<boolean> => {
        if (!hostAnswers) {
          if (what) leftovers.push(what);
          return false;
        }
        try {
          await step();
          return true;
        } catch (err) {
          if (err instanceof ActivityFailure && err.cause instanceof TimeoutFailure) hostAnswers = false;
          if (what) leftovers.push(what);
          log.warn('host cleanup step failed', { host: spec.host, step: what ?? 'collect logs', type: failureType(err) });
          return false;
        }
      };
      const last = vmNames[vmNames.length - 1];
      if (last && launched && !logsCollected) {
        await onHost(undefined, () => host.logs.collectRunnerLogs({ vmName: last, runnerName, runnerDir: spec.runnerDir }));
      }
      for (const vm of vmNames.filter((v) => !destroyed.has(v))) {
        await onHost(`vm ${vm} on ${spec.host}`, () => host.cleanup.destroyVm({ vmName: vm }));
      }
      if (credentialRequested) {
        await onHost(`credential ${runnerName} on ${spec.host}`, () => host.cleanup.discardCredential({ runnerName }));
      }
    };
    await Promise.all([githubSide(), hostSide()]);
  });

  status.leftovers = leftovers;
  const result: RunnerResult = { runnerName, runnerId, vmNames, jobId, outcome, leftovers };
  await CancellationScope.nonCancellable(async () => {
    if (input.slot) await signalQuietly(input.slot.hostWorkflowId, releaseSlotSignal, { workflowId: info.workflowId });
    if (poolId) {
      await signalQuietly(poolId, runnerEndedSignal, {
        workflowId: info.workflowId,
        outcome,
        failed: outcome === 'failed',
        message: failure === undefined ? undefined : failureMessage(failure),
      });
    }
  });
  if (failure !== undefined) {
    setPhase(RunnerPhase.Failed);
    log.warn('runner failed', { runner: runnerName, outcome, leftovers, type: failureType(failure) });
    throw failure;
  }
  setPhase(RunnerPhase.Done);
  return result;

  async function destroyVm(vm: string): Promise<boolean> {
    try {
      await host.cleanup.destroyVm({ vmName: vm });
      return true;
    } catch (err) {
      log.error('could not remove VM', { vm, host: spec.host, type: failureType(err) });
      return false;
    }
  }
}
