/**
 * Test-only stand-ins for PoolWorkflow, HostWorkflow and RunnerWorkflow, registered under the
 * real type names so the operator CLI can be checked end to end against a real server: they
 * answer the queries of workflows/api.ts with fixed values and implement the pool updates
 * (the scale validator rejects size > max), and otherwise wait to be cancelled.
 */
import { CancellationScope, condition, isCancellation, setHandler, sleep } from '@temporalio/workflow';
import {
  drainPoolUpdate,
  hostStatusQuery,
  poolStatusQuery,
  resumePoolUpdate,
  scalePoolUpdate,
  type HostStatus,
  type PoolConfig,
  type PoolStatus,
} from '../../workflows/api.js';

async function untilCancelled(cleanupMs: number): Promise<void> {
  try {
    await condition(() => false);
  } catch (err) {
    if (isCancellation(err)) await CancellationScope.nonCancellable(() => sleep(cleanupMs));
    throw err;
  }
}

export async function PoolWorkflow(input: { config: PoolConfig }): Promise<void> {
  const config = { ...input.config };
  const status: PoolStatus = {
    pool: config.name,
    config,
    draining: false,
    target: 0,
    counts: { starting: 0, idle: 0, busy: 1, cleaning: 0 },
    retiring: 0,
    runners: [],
    pendingJobs: 2,
    started: 3,
    completed: 2,
    failed: 1,
    consecutiveFailures: 1,
    recentFailures: [{ workflowId: `runner/${config.name}/2`, message: 'boot timed out', at: Date.now() }],
    runs: 1,
  };
  const retarget = () => {
    status.target = status.draining ? 0 : Math.min(config.max, Math.max(config.size, status.counts.busy + status.pendingJobs + config.minIdle));
    status.counts.idle = Math.max(0, status.target - status.counts.busy);
  };
  retarget();
  setHandler(poolStatusQuery, () => status);
  setHandler(
    scalePoolUpdate,
    (scale) => {
      Object.assign(config, scale);
      retarget();
      return status;
    },
    {
      validator: (scale) => {
        const next = { ...config, ...scale };
        if (next.size > next.max) throw new Error(`size ${next.size} is more than max ${next.max}; raise max too`);
      },
    },
  );
  setHandler(drainPoolUpdate, () => {
    status.draining = true;
    retarget();
    return status;
  });
  setHandler(resumePoolUpdate, () => {
    status.draining = false;
    retarget();
    return status;
  });
  await untilCancelled(300);
}

export async function HostWorkflow(input: { id: string; capacity: number; leases: number }): Promise<void> {
  const now = Date.now();
  const status: HostStatus = {
    id: input.id,
    state: 'up',
    announcement: {
      id: input.id,
      driver: 'fake',
      capacity: input.capacity,
      labels: ['linux', 'x64'],
      version: '0.1.0-test',
      hostname: 'stand-in',
      pid: 42,
      startedAt: now - 60_000,
    },
    capacity: input.capacity,
    leases: Array.from({ length: input.leases }, (_, i) => ({ workflowId: `runner/p/${i}`, pool: 'p', since: now })),
    lastSeen: now - 5_000,
  };
  setHandler(hostStatusQuery, () => status);
  await untilCancelled(0);
}

export async function RunnerWorkflow(): Promise<void> {
  await untilCancelled(0);
}
