/**
 * The fast test layer's world: the real workflows on the run's real Temporal server, with every
 * activity a stub that follows a per-runner script and records what it was asked. No VMs, SSH
 * or GitHub: a runner's whole life takes a few workflow tasks, so timing paths (idle timeout,
 * max job, boot retries, backoff, retirement) are checked in seconds. What only real
 * components can prove stays in the integration suites.
 */
import { Context } from '@temporalio/activity';
import { Client, Connection } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { NativeConnection, Worker } from '@temporalio/worker';
import { inject } from 'vitest';
import { resolveRunnerTiming } from '../../core/defaults.js';
import { FailureType } from '../../core/failures.js';
import { hostTaskQueue } from '../../core/names.js';
import type { Removal } from '../../core/runner-policy.js';
import type { RunnerSpec, RunnerTiming } from '../../core/runner-spec.js';
import { installRuntime } from '../../workers/logging.js';
import { BUNDLE } from './harness.js';

/** How one runner's stubbed steps behave (by workflow id). Absent fields: the happy path. */
export interface Script {
  /** ensureImage fails for good (an unknown image). */
  imageMissing?: boolean;
  /** ensureImage takes this long. */
  imageDelayMs?: number;
  /** The first N ensureImage attempts find the registry down (retryable, as the QEMU driver reports it). */
  registryDownPulls?: number;
  /** ensureImage: the registry refuses the host's credentials (final). */
  registryRefuses?: boolean;
  /** obtainRunnerCredential takes this long (it records `obtainRunnerCredential:done` or `:cancelled` at its end). */
  credentialDelayMs?: number;
  /** VM attempts (1-based) whose boot fails with a boot timeout. */
  bootFails?: number[];
  /** Boot waits until cancelled. */
  bootHangs?: boolean;
  /** How awaitJobStart ends: a job after `jobAfterMs`, the idle deadline, or the runner exiting. */
  start?: { kind: 'job'; afterMs?: number; jobId?: string } | { kind: 'idle' } | { kind: 'exited' };
  /** What the deregistration after an idle timeout or retirement hears from GitHub. */
  removal?: Removal;
  /** How long every removeRunner call takes. */
  removeDelayMs?: number;
  /** awaitRunnerExit: the job outlives its deadline. */
  jobHangs?: boolean;
}

export interface Call {
  workflowId: string;
  activity: string;
  args: Record<string, unknown>;
  at: number;
}

export interface StubWorld {
  client: Client;
  host: string;
  taskQueue: string;
  calls: Call[];
  /** The script for a workflow id, or for every workflow id starting with a prefix (`prefix*`). */
  script(workflowIdOrPrefix: string, s: Script): void;
  callsOf(workflowId: string): Call[];
  spec(o?: Partial<RunnerSpec>): RunnerSpec;
  timing(o?: Partial<RunnerTiming>): RunnerTiming;
  close(): Promise<void>;
}

/** Waits `ms` while heartbeating, so a cancellation reaches the stub at once. */
async function wait(ms: number): Promise<void> {
  const ctx = Context.current();
  const until = Date.now() + ms;
  while (Date.now() < until) {
    ctx.heartbeat();
    await ctx.sleep(Math.min(100, Math.max(1, until - Date.now())));
  }
}

export async function createStubWorld(name: string): Promise<StubWorld> {
  installRuntime({ level: 'WARN', sink: () => {} });
  const address = inject('temporalAddress');
  const connection = await Connection.connect({ address });
  const nativeConnection = await NativeConnection.connect({ address });
  const client = new Client({ connection });
  const suffix = Math.random().toString(36).slice(2, 8);
  const host = `${name}-${suffix}`;
  const taskQueue = `ekiden-stub-${host}`;
  const calls: Call[] = [];
  const scripts = new Map<string, Script>();

  const scriptOf = (workflowId: string): Script => {
    const exact = scripts.get(workflowId);
    if (exact) return exact;
    for (const [k, s] of scripts) if (k.endsWith('*') && workflowId.startsWith(k.slice(0, -1))) return s;
    return {};
  };
  /** Records the call and hands the stub its runner's script. */
  const enter = (activity: string, args: object): Script => {
    const workflowId = Context.current().info.workflowExecution?.workflowId ?? "";
    calls.push({ workflowId, activity, args: { ...args }, at: Date.now() });
    return scriptOf(workflowId);
  };
  const attemptOf = (vmName: string) => Number(/-(\d+)$/.exec(vmName)?.[1] ?? '1');

  const hostActivities = {
    async ensureImage(args: { image: string; digest?: string }) {
      const s = enter('ensureImage', args);
      if (s.imageDelayMs) await wait(s.imageDelayMs);
      if (s.imageMissing) throw ApplicationFailure.nonRetryable(`image ${args.image} not found`, FailureType.ImageNotFound);
      if (s.registryRefuses) throw ApplicationFailure.nonRetryable(`image ${args.image}: registry refused the credentials; check registry.passwordEnv`, FailureType.RegistryAuth);
      if (s.registryDownPulls && Context.current().info.attempt <= s.registryDownPulls) {
        throw ApplicationFailure.retryable(`image ${args.image}: registry unreachable: connect ECONNREFUSED`, FailureType.RegistryUnavailable);
      }
      return { digest: 'sha256:stub', pulled: false };
    },
    async obtainRunnerCredential(args: { runnerName: string }) {
      const s = enter('obtainRunnerCredential', args);
      if (s.credentialDelayMs) {
        try {
          await wait(s.credentialDelayMs);
        } catch (err) {
          enter('obtainRunnerCredential:cancelled', args);
          throw err;
        }
        enter('obtainRunnerCredential:done', args);
      }
      return { runnerId: 7 };
    },
    async discardCredential(args: { runnerName: string }) {
      enter('discardCredential', args);
    },
    async cloneVm(args: { vmName: string }) {
      enter('cloneVm', args);
    },
    async bootVm(args: { vmName: string; bootTimeoutMs: number }) {
      const s = enter('bootVm', args);
      if (s.bootHangs) await wait(60 * 60_000);
      if (s.bootFails?.includes(attemptOf(args.vmName))) {
        throw ApplicationFailure.nonRetryable(`VM ${args.vmName} did not answer SSH in time`, FailureType.BootTimeout);
      }
      return { bootMs: 1 };
    },
    async launchRunner(args: { vmName: string }) {
      enter('launchRunner', args);
      return { alreadyRunning: false };
    },
    async awaitJobStart(args: { vmName: string; idleDeadline: number }) {
      const start = enter('awaitJobStart', args).start ?? { kind: 'job' };
      if (start.kind === 'exited') return { kind: 'runner-exited' as const };
      if (start.kind === 'job') {
        await wait(start.afterMs ?? 0);
        return { kind: 'job-started' as const, jobId: start.jobId ?? '1001', startedAt: Date.now() };
      }
      await wait(args.idleDeadline - Date.now());
      return { kind: 'idle-timeout' as const };
    },
    async awaitRunnerExit(args: { vmName: string; jobDeadline: number }) {
      if (enter('awaitRunnerExit', args).jobHangs) {
        await wait(args.jobDeadline - Date.now());
        return { kind: 'job-timeout' as const, logsCollected: true };
      }
      return { kind: 'exited' as const, exitCode: 0, logsCollected: true };
    },
    async stopGuestRunner(args: { vmName: string }) {
      enter('stopGuestRunner', args);
    },
    async collectRunnerLogs(args: { vmName: string }) {
      enter('collectRunnerLogs', args);
      return { files: [] };
    },
    async destroyVm(args: { vmName: string }) {
      enter('destroyVm', args);
    },
  };
  const sharedActivities = {
    async removeRunner(args: { runnerName: string; allowBusy?: boolean }): Promise<Removal> {
      const s = enter('removeRunner', args);
      if (s.removeDelayMs) await wait(s.removeDelayMs);
      return args.allowBusy ? (s.removal ?? 'removed') : 'removed';
    },
    async acquireHostSlot(args: { host: string; workflowId: string; pool: string }) {
      enter('acquireHostSlot', args);
      return { granted: true as const };
    },
    async closedWorkflows(args: { workflowIds: string[] }) {
      enter('closedWorkflows', args);
      return [] as string[];
    },
  };

  const workers = [
    await Worker.create({
      connection: nativeConnection,
      taskQueue,
      workflowBundle: { codePath: BUNDLE },
      activities: sharedActivities,
      maxHeartbeatThrottleInterval: '200 ms',
    }),
    await Worker.create({
      connection: nativeConnection,
      taskQueue: hostTaskQueue(host),
      activities: hostActivities,
      maxHeartbeatThrottleInterval: '200 ms',
    }),
  ];
  const running = workers.map((w) => w.run());

  return {
    client,
    host,
    taskQueue,
    calls,
    script: (id, s) => void scripts.set(id, s),
    callsOf: (workflowId) => calls.filter((c) => c.workflowId === workflowId),
    spec: (o) => ({
      pool: 'stub',
      host,
      image: 'ekiden/stub:1',
      labels: ['self-hosted', 'stub'],
      runnerGroupId: 1,
      runnerDir: 'actions-runner',
      credential: 'jit',
      ...o,
    }),
    timing: (o) => resolveRunnerTiming({ heartbeatTimeoutMs: 2_000, idleTimeoutMs: 60_000, bootTimeoutMs: 20_000, ...o }),
    async close() {
      for (const w of workers) w.shutdown();
      await Promise.all(running);
      await nativeConnection.close();
      await connection.close();
    },
  };
}
