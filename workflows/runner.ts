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
  getExternalWorkflowHandle,
  isCancellation,
  log,
  patched,
  proxyActivities,
  setHandler,
  upsertSearchAttributes,
  workflowInfo,
  type ActivityOptions,
  type SignalDefinition,
} from '@temporalio/workflow';
import type { GitHubActivities } from '../activities/github.js';
import type { HostActivities } from '../activities/host.js';
import { ms } from '../core/durations.js';
import { failureMessage, failureType, FailureType } from '../core/failures.js';
import { hostTaskQueue, runnerName as makeRunnerName, runToken, vmName as makeVmName } from '../core/names.js';
import { OUTCOME_EFFECT } from '../core/pool-policy.js';
import { afterJobWait, nextRunnerPhase, outcomeOfFailure, poolPhaseOf, retryBoot, type JobStart, type RunnerEvent } from '../core/runner-policy.js';
import { type RunnerOutcome, type RunnerResult, type RunnerStatus, type RunnerTiming, type RunnerWorkflowInput } from '../core/runner-spec.js';
import { RunnerPhase, SA_JOB, SA_PHASE, SA_RUNNER } from '../core/search-attributes.js';
import {
  hostDownSignal,
  jobAssignedSignal,
  releaseSlotSignal,
  retireRunnerSignal,
  runnerEndedSignal,
  runnerPhaseChangedSignal,
  runnerStatusQuery,
  type RunnerPhaseChange,
} from './api.js';

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
    // A registry outage is waited out for about a minute and a half (1 s doubling to 30 s, 8
    // attempts) before the runner fails and its pool backs off; refused credentials, a full cache
    // and a missing image are final at once.
    pull: proxyActivities<HostActivities>({ ...base, startToCloseTimeout: ms(timing.pullTimeoutMs), retry: { ...base.retry, maximumAttempts: 8 } }),
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

/**
 * Runs two steps at once; when one fails, the other is cancelled and awaited before the
 * failure is thrown, so cleanup never starts while a sibling can still create something (a
 * registration on GitHub, a credential file) after it.
 */
async function bothOrNeither<A, B>(a: () => Promise<A>, b: () => Promise<B>): Promise<B> {
  const scope = new CancellationScope();
  const [ra, rb] = await scope.run(() => {
    const pa = a();
    const pb = b();
    pa.catch(() => scope.cancel());
    pb.catch(() => scope.cancel());
    return Promise.allSettled([pa, pb]);
  });
  // The failure that caused it, not the sibling's cancellation it led to.
  const failures = [ra, rb].filter((r): r is PromiseRejectedResult => r.status === 'rejected').map((r) => r.reason as unknown);
  if (failures.length > 0) throw failures.find((f) => !isCancellation(f)) ?? failures[0];
  return (rb as PromiseFulfilledResult<B>).value;
}

/** Patch: image and credential both settle before cleanup (workflows started before it used Promise.all). */
const SIBLINGS_SETTLE = 'prepare-siblings-settle';

/** Signal another workflow; a closed or missing one is not this runner's problem. */
async function signalQuietly<Args extends unknown[]>(workflowId: string, def: SignalDefinition<Args>, ...args: Args): Promise<void> {
  try {
    await getExternalWorkflowHandle(workflowId).signal(def, ...args);
  } catch (err) {
    log.info('could not signal', { workflowId, signal: def.name, message: failureMessage(err) });
  }
}

export async function RunnerWorkflow(input: RunnerWorkflowInput): Promise<RunnerResult> {
  const { spec } = input;
  const timing: RunnerTiming = input.timing;
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

  const announce = (phase: RunnerPhase, failure?: RunnerPhaseChange['failure']) => {
    status.phase = phase;
    status.since = Date.now();
    upsertSearchAttributes([{ key: SA_PHASE, value: phase }]);
    const poolPhase = poolPhaseOf(phase);
    if (poolId && poolPhase) void signalQuietly(poolId, runnerPhaseChangedSignal, { workflowId: info.workflowId, phase: poolPhase, ...(failure ? { failure } : {}) });
  };
  /** Move along the runner's state machine (core/runner-policy.ts); an impossible step is a bug. */
  const step = (event: RunnerEvent) => {
    const next = nextRunnerPhase(status.phase, event);
    if (!next) throw ApplicationFailure.nonRetryable(`runner ${runnerName}: no step "${event}" from phase ${status.phase}`, FailureType.InvalidInput);
    announce(next);
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
  announce(RunnerPhase.Pulling);

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
    outcome = outcomeOfFailure(hostGone, isCancellation(err));
  }
  async function live(): Promise<void> {
    // Image and credential do not depend on each other: fetch both at once.
    credentialRequested = true;
    const pull = () => host.pull.ensureImage({ image: spec.image, digest: spec.imageDigest });
    const register = () =>
      host.credential.obtainRunnerCredential({ runnerName, labels: spec.labels, runnerGroupId: spec.runnerGroupId, mode: spec.credential });
    const credential = patched(SIBLINGS_SETTLE) ? await bothOrNeither(pull, register) : (await Promise.all([pull(), register()]))[1];
    runnerId = credential.runnerId;
    status.runnerId = runnerId;

    step('prepared');
    for (let attempt = 1; ; attempt++) {
      const vm = makeVmName({ pool: spec.pool, token, attempt });
      vmNames.push(vm);
      status.vmName = vm;
      await host.clone.cloneVm({ image: spec.image, vmName: vm, cpu: spec.cpu, memoryMb: spec.memoryMb });
      step('cloned');
      try {
        await host.boot.bootVm({ vmName: vm, bootTimeoutMs: timing.bootTimeoutMs });
        break;
      } catch (err) {
        if (!retryBoot(attempt, timing, isCancellation(err))) throw err;
        log.warn('boot failed; trying a fresh VM', { vm, attempt, type: failureType(err) });
        if (await destroyVm(vm)) destroyed.add(vm);
        step('boot-retry');
      }
    }
    const vm = status.vmName!;

    step('booted');
    launched = true; // set before the call: a launch that times out may still have started it
    await host.launch.launchRunner({ vmName: vm, runnerName, runnerDir: spec.runnerDir });

    step('launched');
    let start: JobStart = { kind: 'idle-timeout' };
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
    // Idle timeout or retirement: take the runner off GitHub first, so no job lands on a
    // runner we are about to destroy (a 422 "busy" means one just did: it may run).
    const removal = start.kind === 'idle-timeout' ? await github.removeRunner({ runnerId, runnerName, allowBusy: true }) : undefined;
    const next = afterJobWait(start, removal, retire, Date.now(), timing);
    if (next.kind === 'end') {
      outcome = next.outcome;
      if (next.stopRunner) await host.cleanup.stopGuestRunner({ vmName: vm, runnerDir: spec.runnerDir });
      return;
    }
    setJob(next.jobId);
    step('job-started');
    const exit = await host.await.awaitRunnerExit({ vmName: vm, runnerName, runnerDir: spec.runnerDir, jobDeadline: next.deadline });
    outcome = exit.kind === 'exited' ? 'completed' : 'job-timeout';
    logsCollected = exit.logsCollected;
  }

  /** What the pool shows for this runner's end. */
  function endMessage(): string | undefined {
    if (failure !== undefined) return failureMessage(failure);
    if (outcome === 'runner-exited') return `runner ${runnerName} exited without taking a job (an outdated runner does this; is the image's runner too old?)`;
    return undefined;
  }

  // Cleanup on every path. GitHub side and host side run independently: a dead host must not
  // keep a registration alive, and a GitHub outage must not keep a VM alive.
  const leftovers: string[] = [];
  await CancellationScope.nonCancellable(async () => {
    // A failure is told with the cleanup's start, so the pool backs off before it replaces this runner.
    const failed = OUTCOME_EFFECT[outcome].failed ? { outcome, message: endMessage() } : undefined;
    announce(nextRunnerPhase(status.phase, 'cleanup') ?? RunnerPhase.Cleaning, failed);
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
      const onHost = async (what: string | undefined, run: () => Promise<unknown>): Promise<boolean> => {
        if (!hostAnswers) {
          if (what) leftovers.push(what);
          return false;
        }
        try {
          await run();
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
        failed: OUTCOME_EFFECT[outcome].failed,
        message: endMessage(),
      });
    }
  });
  if (failure !== undefined) {
    step('failed');
    log.warn('runner failed', { runner: runnerName, outcome, leftovers, type: failureType(failure) });
    throw failure;
  }
  step('succeeded');
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
