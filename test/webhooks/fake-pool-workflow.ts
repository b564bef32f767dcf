/**
 * Test-only workflows for the webhook receiver's tests: a stand-in registered under the
 * type name `PoolWorkflow` that answers `poolStatusQuery` from its input and records the
 * job signals it gets, and a stand-in runner that records `jobAssignedSignal`. They keep
 * the receiver's tests independent of the real PoolWorkflow and RunnerWorkflow.
 */
import { resolvePoolConfig } from '../../core/defaults.js';
import { condition, defineQuery, setHandler } from '@temporalio/workflow';
import { jobAssignedSignal, jobProgressedSignal, jobQueuedSignal, poolStatusQuery, type PoolStatus, type QueuedJob } from '../../workflows/api.js';

export interface FakePoolInput {
  name: string;
  labels: string[];
  max: number;
  /** Runners counted as busy (headroom = max - busy). */
  busy?: number;
  draining?: boolean;
}

export interface FakePoolRecord {
  queued: QueuedJob[];
  progress: Array<{ jobId: string; action: 'in_progress' | 'completed'; runnerName?: string }>;
}

export const fakePoolRecordQuery = defineQuery<FakePoolRecord>('fakePoolRecord');
export const fakeRunnerJobsQuery = defineQuery<string[]>('fakeRunnerJobs');

export async function PoolWorkflow(input: FakePoolInput): Promise<void> {
  const record: FakePoolRecord = { queued: [], progress: [] };
  setHandler(jobQueuedSignal, (job) => {
    record.queued.push(job);
  });
  setHandler(jobProgressedSignal, (p) => {
    record.progress.push(p);
  });
  setHandler(fakePoolRecordQuery, () => record);
  setHandler(poolStatusQuery, (): PoolStatus => {
    const busy = input.busy ?? 0;
    return {
      pool: input.name,
      config: resolvePoolConfig({
        name: input.name,
        hosts: [],
        image: 'fake',
        labels: input.labels,
        runnerGroupId: 1,
        runnerDir: 'actions-runner',
        credential: 'jit',
        size: 0,
        minIdle: 0,
        max: input.max,
      }),
      draining: input.draining ?? false,
      target: busy,
      counts: { starting: 0, idle: 0, busy, cleaning: 0 },
    retiring: 0,
      runners: [],
      pendingJobs: record.queued.length,
      started: 0,
      completed: 0,
      failed: 0,
      consecutiveFailures: 0,
      recentFailures: [],
      runs: 1,
    };
  });
  await condition(() => false);
}

export async function FakeRunnerWorkflow(): Promise<void> {
  const jobs: string[] = [];
  setHandler(jobAssignedSignal, ({ jobId }) => {
    jobs.push(jobId);
  });
  setHandler(fakeRunnerJobsQuery, () => jobs);
  await condition(() => false);
}
