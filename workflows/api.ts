/**
 * The messages Ekiden's workflows accept, and the shapes they exchange: the one contract
 * shared by the workflows, the CLI, the webhook receiver and the host workers. Definitions
 * only (no workflow code runs here), so clients import it freely.
 */
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import type { RunnerSpec, RunnerTiming } from '../core/runner-spec.js';

// ───────────────────────────── pools ─────────────────────────────

/** The runner shape a pool gives every runner it starts (RunnerSpec minus where it runs). */
export type PoolRunnerShape = Omit<RunnerSpec, 'pool' | 'host'>;

/** A pool: runners of one shape, kept warm on one or more hosts. */
export interface PoolConfig extends PoolRunnerShape {
  name: string;
  /** Host ids the pool may place runners on (each one's worker serves `ekiden-host-<id>`). */
  hosts: string[];
  /** Runners kept alive whatever the demand (the warm floor). */
  size: number;
  /** Idle runners kept ready on top of the busy ones and the queued jobs. */
  minIdle: number;
  /** Never more runners than this, whatever the demand. */
  max: number;
  timing?: Partial<RunnerTiming>;
  backoff?: { initialMs: number; maxMs: number };
  /** Stop after this many runner lives (demos and tests); unlimited when absent. */
  maxRunners?: number;
}

export interface PoolScale {
  size?: number;
  minIdle?: number;
  max?: number;
}

export type PoolRunnerPhase = 'starting' | 'idle' | 'busy' | 'cleaning';

export interface PoolRunnerView {
  workflowId: string;
  /** Its GitHub runner name (from the child's run id), to match `in_progress` webhooks. */
  runnerName?: string;
  host: string;
  phase: PoolRunnerPhase;
  /** Epoch ms when the runner entered this phase. */
  since: number;
  startedAt: number;
}

export interface PoolFailure {
  workflowId: string;
  message: string;
  at: number;
}

export interface PoolStatus {
  pool: string;
  config: PoolConfig;
  draining: boolean;
  /** Runners the pool wants alive now (starting + idle + busy). */
  target: number;
  counts: Record<PoolRunnerPhase, number>;
  runners: PoolRunnerView[];
  /** Queued jobs (from webhooks) not yet picked up. */
  pendingJobs: number;
  started: number;
  completed: number;
  failed: number;
  consecutiveFailures: number;
  /** Epoch ms until which no runner starts (backoff after failures). */
  backoffUntil?: number;
  /** Why the pool is below target, when it is (hosts full or down, backoff). */
  blocked?: string;
  recentFailures: PoolFailure[];
  /** Runs of this pool so far (continue-as-new keeps the state across runs). */
  runs: number;
}

export const poolStatusQuery = defineQuery<PoolStatus>('poolStatus');
/** Change size / minIdle / max. Rejected (nothing changes) when the values are invalid. */
export const scalePoolUpdate = defineUpdate<PoolStatus, [PoolScale]>('scale');
/** Running jobs finish; no new runners start; idle runners are retired. */
export const drainPoolUpdate = defineUpdate<PoolStatus, []>('drain');
/** Undo a drain. */
export const resumePoolUpdate = defineUpdate<PoolStatus, []>('resume');

export interface QueuedJob {
  jobId: string;
  labels: string[];
}
/** A `workflow_job` `queued` webhook routed to this pool (idempotent per job id). */
export const jobQueuedSignal = defineSignal<[QueuedJob]>('jobQueued');
/** A `workflow_job` `in_progress` / `completed` webhook: the job no longer waits. */
export const jobProgressSignal = defineSignal<[{ jobId: string; action: 'in_progress' | 'completed'; runnerName?: string }]>('jobProgress');

/** Sent by a RunnerWorkflow to its pool when it changes phase. */
export const runnerPhaseSignal = defineSignal<[{ workflowId: string; phase: PoolRunnerPhase }]>('runnerPhase');
/** Sent by a RunnerWorkflow to its pool when its life (cleanup included) is over. */
export const runnerEndedSignal = defineSignal<[{ workflowId: string; outcome: string; failed: boolean; message?: string }]>('runnerEnded');

// ───────────────────────────── hosts ─────────────────────────────

export type DriverKind = 'fake' | 'qemu' | 'tart';

/** What a host worker says about itself when it starts. */
export interface HostAnnouncement {
  id: string;
  driver: DriverKind;
  /** VMs this host runs at once (tart: 2 per Mac, Apple's limit). */
  capacity: number;
  labels: string[];
  version: string;
  hostname: string;
  pid: number;
  startedAt: number;
}

export interface HostLease {
  workflowId: string;
  pool: string;
  since: number;
}

export interface HostStatus {
  id: string;
  state: 'unknown' | 'up' | 'down' | 'retired';
  announcement?: HostAnnouncement;
  capacity: number;
  leases: HostLease[];
  /** Epoch ms of the last answer from the host's worker. */
  lastSeen?: number;
  downSince?: number;
  /** Last reconciliation on this host: what it removed. */
  lastReconcile?: { at: number; removedVms: string[]; removedCredentials: string[] };
}

export const hostStatusQuery = defineQuery<HostStatus>('hostStatus');
export const announceHostSignal = defineSignal<[HostAnnouncement]>('announceHost');
/** Take a slot on the host for a runner (idempotent per workflowId); rejected when full or down. */
export const acquireSlotUpdate = defineUpdate<HostLease, [{ workflowId: string; pool: string }]>('acquireSlot');
/** Give a slot back (idempotent). */
export const releaseSlotSignal = defineSignal<[{ workflowId: string }]>('releaseSlot');
/** Stop watching the host (operator retired it). */
export const retireHostSignal = defineSignal('retireHost');

/** Sent by a pool to an idle runner it no longer needs: deregistered first, so a job that just landed still runs. */
export const retireRunnerSignal = defineSignal('retireRunner');

/** Sent to a RunnerWorkflow when its host is marked down: GitHub cleanup only, the VM is left to reconciliation. */
export const hostDownSignal = defineSignal('hostDown');
