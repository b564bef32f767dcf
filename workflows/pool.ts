/**
 * PoolWorkflow: keeps `size` ephemeral runners alive on one host as child RunnerWorkflows,
 * replacing each one when its life ends. Runners that keep failing are replaced with
 * exponential backoff, so a bad image or token never becomes a tight loop.
 */
import {
  ApplicationFailure,
  ChildWorkflowCancellationType,
  condition,
  defineQuery,
  defineSignal,
  isCancellation,
  log,
  ParentClosePolicy,
  setHandler,
  sleep,
  startChild,
  CancellationScope,
  type ChildWorkflowHandle,
} from '@temporalio/workflow';
import { assertSlug, runnerWorkflowId } from '../core/names.js';
import type { RunnerResult, RunnerSpec, RunnerTiming } from '../core/runner-spec.js';
import { SA_HOST, SA_PHASE, SA_POOL, RunnerPhase } from '../core/search-attributes.js';
import { RunnerWorkflow } from './runner.js';

export interface PoolWorkflowInput {
  spec: RunnerSpec;
  size: number;
  timing?: Partial<RunnerTiming>;
  /** Stop after this many runner lives (demos and tests); unlimited when absent. */
  maxRunners?: number;
  backoff?: { initialMs: number; maxMs: number };
}

export interface PoolStatus {
  pool: string;
  size: number;
  draining: boolean;
  active: string[];
  started: number;
  completed: number;
  failed: number;
  consecutiveFailures: number;
  recentFailures: Array<{ workflowId: string; message: string }>;
}

export const poolStatusQuery = defineQuery<PoolStatus>('poolStatusQuery');
export const drainSignal = defineSignal('drainSignal');

export async function PoolWorkflow(input: PoolWorkflowInput): Promise<PoolStatus> {
  const { spec } = input;
  assertSlug('pool name', spec.pool);
  if (!Number.isInteger(input.size) || input.size < 0) {
    throw ApplicationFailure.nonRetryable(`size: ${input.size} is not a whole number ≥ 0`);
  }
  const backoff = input.backoff ?? { initialMs: 5_000, maxMs: 5 * 60_000 };
  const status: PoolStatus = {
    pool: spec.pool,
    size: input.size,
    draining: false,
    active: [],
    started: 0,
    completed: 0,
    failed: 0,
    consecutiveFailures: 0,
    recentFailures: [],
  };
  setHandler(poolStatusQuery, () => ({ ...status, active: [...status.active], recentFailures: [...status.recentFailures] }));
  setHandler(drainSignal, () => {
    status.draining = true;
  });

  const children = new Map<string, ChildWorkflowHandle<typeof RunnerWorkflow>>();
  const limitReached = () => input.maxRunners !== undefined && status.started >= input.maxRunners;
  let waitUntil = 0;

  const watch = async (handle: ChildWorkflowHandle<typeof RunnerWorkflow>) => {
    try {
      const result: RunnerResult = await handle.result();
      status.completed++;
      status.consecutiveFailures = 0;
      log.info('runner finished', { workflowId: handle.workflowId, outcome: result.outcome, job: result.jobId });
    } catch (err) {
      status.failed++;
      status.consecutiveFailures++;
      const message = err instanceof Error ? (err.cause instanceof Error ? err.cause.message : err.message) : String(err);
      status.recentFailures = [...status.recentFailures, { workflowId: handle.workflowId, message }].slice(-10);
      const delay = Math.min(backoff.maxMs, backoff.initialMs * 2 ** (status.consecutiveFailures - 1));
      waitUntil = Date.now() + delay;
      log.warn('runner failed; backing off', { workflowId: handle.workflowId, delayMs: delay, message });
    } finally {
      children.delete(handle.workflowId);
      status.active = [...children.keys()];
    }
  };

  try {
    for (;;) {
      await condition(() => status.draining || (children.size < status.size && !limitReached()) || (limitReached() && children.size === 0));
      if (status.draining || (limitReached() && children.size === 0)) break;
      if (Date.now() < waitUntil) {
        await sleep(waitUntil - Date.now());
        continue;
      }
      const seq = status.started + 1;
      const workflowId = runnerWorkflowId(spec.pool, seq);
      const handle = await startChild(RunnerWorkflow, {
        workflowId,
        args: [{ spec, timing: input.timing }],
        parentClosePolicy: ParentClosePolicy.REQUEST_CANCEL,
        cancellationType: ChildWorkflowCancellationType.WAIT_CANCELLATION_COMPLETED,
        typedSearchAttributes: [
          { key: SA_POOL, value: spec.pool },
          { key: SA_HOST, value: spec.host },
          { key: SA_PHASE, value: RunnerPhase.Pulling },
        ],
      });
      status.started++;
      children.set(workflowId, handle);
      status.active = [...children.keys()];
      void watch(handle);
    }
    // Draining: running jobs finish; no new runners start.
    await condition(() => children.size === 0);
  } catch (err) {
    if (!isCancellation(err)) throw err;
    // Cancelled: cancel every runner (they clean up) and wait for them.
    await CancellationScope.nonCancellable(() => condition(() => children.size === 0));
    throw err;
  }
  return { ...status, active: [] };
}
