/**
 * The rules of one runner's life, as pure functions: which phase follows which step (a state
 * machine over RunnerPhase), what the pool hears of each phase, and how the wait for a job
 * ends (job, idle timeout, retirement, a runner that exited on its own, a job that landed as
 * the runner was being removed). RunnerWorkflow (workflows/runner.ts) wires these to its
 * activities; test/core/runner-policy.test.ts walks every phase × event pair. Time is a
 * parameter. Pure module: safe in workflow code.
 */
import type { PoolRunnerPhase } from './pool-policy.js';
import type { RunnerOutcome, RunnerTiming } from './runner-spec.js';
import { RunnerPhase } from './search-attributes.js';

export type RunnerEvent =
  /** Image and credential are ready; a VM is cloned next. */
  | 'prepared'
  | 'cloned'
  | 'booted'
  /** Boot failed and another fresh VM will be tried. */
  | 'boot-retry'
  | 'launched'
  | 'job-started'
  /** Lifecycle over (any way, failure and cancellation included): cleanup starts. */
  | 'cleanup'
  | 'succeeded'
  | 'failed';

export const RUNNER_EVENTS: readonly RunnerEvent[] = ['prepared', 'cloned', 'booted', 'boot-retry', 'launched', 'job-started', 'cleanup', 'succeeded', 'failed'];

const LIVE: readonly RunnerPhase[] = [
  RunnerPhase.Pulling,
  RunnerPhase.Credential,
  RunnerPhase.Cloning,
  RunnerPhase.Booting,
  RunnerPhase.Launching,
  RunnerPhase.Idle,
  RunnerPhase.Busy,
];

/** The phase after `event` in `phase`; undefined when the event cannot happen there. */
export function nextRunnerPhase(phase: RunnerPhase, event: RunnerEvent): RunnerPhase | undefined {
  switch (event) {
    case 'prepared':
      return phase === RunnerPhase.Pulling || phase === RunnerPhase.Credential ? RunnerPhase.Cloning : undefined;
    case 'cloned':
      return phase === RunnerPhase.Cloning ? RunnerPhase.Booting : undefined;
    case 'boot-retry':
      return phase === RunnerPhase.Booting ? RunnerPhase.Cloning : undefined;
    case 'booted':
      return phase === RunnerPhase.Booting ? RunnerPhase.Launching : undefined;
    case 'launched':
      return phase === RunnerPhase.Launching ? RunnerPhase.Idle : undefined;
    case 'job-started':
      return phase === RunnerPhase.Idle ? RunnerPhase.Busy : undefined;
    case 'cleanup':
      return LIVE.includes(phase) ? RunnerPhase.Cleaning : undefined;
    case 'succeeded':
      return phase === RunnerPhase.Cleaning ? RunnerPhase.Done : undefined;
    case 'failed':
      return phase === RunnerPhase.Cleaning ? RunnerPhase.Failed : undefined;
  }
}

/** The pool's view of a runner phase (it tells only idle, busy and cleaning apart). */
export function poolPhaseOf(phase: RunnerPhase): PoolRunnerPhase | undefined {
  switch (phase) {
    case RunnerPhase.Idle:
      return 'idle';
    case RunnerPhase.Busy:
      return 'busy';
    case RunnerPhase.Cleaning:
      return 'cleaning';
    default:
      return undefined;
  }
}

/** How the wait for a job ended (awaitJobStart's answer). */
export type JobStart =
  | { kind: 'job-started'; jobId?: string; startedAt?: number }
  | { kind: 'idle-timeout' }
  | { kind: 'runner-exited' };

/** What GitHub said to the deregistration tried after an idle timeout or a retirement. */
export type Removal = 'removed' | 'busy' | 'not-found';

export type AfterWait =
  /** A job runs: await the runner's exit until `deadline` (epoch ms). */
  | { kind: 'job'; jobId?: string; deadline: number }
  /** No job will come: end with `outcome`; stop the guest's runner first when `stopRunner`. */
  | { kind: 'end'; outcome: RunnerOutcome; stopRunner: boolean };

/** An ephemeral registration is gone only once its job ended: the runner is about to exit. */
export const FINISHING_GRACE_MS = 2 * 60_000;

/** The wait for a job ended with `start` at `now`: does a job need waiting for, or does the runner end? */
export function afterJobWait(start: JobStart, removal: Removal | undefined, retiring: boolean, now: number, timing: Pick<RunnerTiming, 'maxJobMs'>): AfterWait {
  switch (start.kind) {
    case 'job-started':
      return { kind: 'job', jobId: start.jobId, deadline: (start.startedAt ?? now) + timing.maxJobMs };
    case 'runner-exited':
      return { kind: 'end', outcome: 'runner-exited', stopRunner: false };
    case 'idle-timeout':
      // The runner was taken off GitHub first (deregisterBeforeStop), so no job lands on it.
      switch (removal) {
        case 'removed':
        case undefined:
          return { kind: 'end', outcome: retiring ? 'retired' : 'idle-timeout', stopRunner: true };
        case 'busy':
          // A job arrived just as we gave up on it: let it run.
          return { kind: 'job', deadline: now + timing.maxJobMs };
        case 'not-found':
          return { kind: 'job', deadline: now + FINISHING_GRACE_MS };
      }
  }
}

/** Whether a failed boot gets another fresh VM. */
export function retryBoot(attempt: number, timing: Pick<RunnerTiming, 'bootAttempts'>, cancelled: boolean): boolean {
  return !cancelled && attempt < timing.bootAttempts;
}

/** The outcome of a lifecycle that threw: the host went away, it was cancelled, or it failed. */
export function outcomeOfFailure(hostGone: boolean, cancelled: boolean): RunnerOutcome {
  return hostGone ? 'host-down' : cancelled ? 'cancelled' : 'failed';
}
