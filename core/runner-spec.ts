/**
 * What a RunnerWorkflow needs to know: the runner's shape (image, labels, VM size) and its
 * timing. Pure data (defaults live in core/defaults.ts, filled in before a workflow starts);
 * safe in workflow code.
 */

import type { RunnerPhase } from './search-attributes.js';

export interface RunnerTiming {
  /** Pulling an image into the host cache. */
  pullTimeoutMs: number;
  /** Boot: VM start → SSH accepts us. */
  bootTimeoutMs: number;
  /** A launched runner that gets no job within this is recycled. */
  idleTimeoutMs: number;
  /** A job running longer than this is stopped. */
  maxJobMs: number;
  /** Heartbeat timeout of long host activities: how fast a dead worker is noticed. */
  heartbeatTimeoutMs: number;
  /** Cleanup on a host that stopped answering gives up after this; reconciliation takes over. */
  hostCleanupTimeoutMs: number;
  /** Deregistration keeps trying this long (a busy runner frees up once its VM is gone). */
  deregisterTimeoutMs: number;
  /** Fresh VMs tried when boot fails, before the runner fails. */
  bootAttempts: number;
}


export interface RunnerSpec {
  pool: string;
  /** Host id: its worker serves task queue `ekiden-host-<host>`. */
  host: string;
  image: string;
  /** Pin the image to this digest (`sha256:…`); re-pulled when the cached one differs. */
  imageDigest?: string;
  labels: string[];
  runnerGroupId: number;
  cpu?: number;
  memoryMb?: number;
  /** Runner folder in the guest (relative to the guest user's home or absolute). */
  runnerDir: string;
  credential: CredentialMode;
}

/** How the runner gets its GitHub credential: a JIT config, or a registration token for config.sh. */
export type CredentialMode = 'jit' | 'registration-token';

export interface RunnerWorkflowInput {
  spec: RunnerSpec;
  /** Every timing value, resolved before the workflow starts (core/defaults.ts). */
  timing: RunnerTiming;
  /** The host slot this runner holds (HostWorkflow id): given back when the VM is gone. */
  slot?: { hostWorkflowId: string };
}

export type RunnerOutcome =
  | 'completed'
  | 'idle-timeout'
  | 'retired'
  | 'job-timeout'
  | 'runner-exited'
  | 'failed'
  | 'cancelled'
  | 'host-down';

export interface RunnerResult {
  runnerName: string;
  runnerId?: number;
  vmNames: string[];
  jobId?: string;
  outcome: RunnerOutcome;
  /** Cleanup steps that did not finish (e.g. a dead host): left for reconciliation. */
  leftovers: string[];
}

export interface RunnerStatus {
  phase: RunnerPhase;
  runnerName: string;
  runnerId?: number;
  vmName?: string;
  jobId?: string;
  host: string;
  pool: string;
  /** Epoch ms of the last phase change. */
  since: number;
  /** Cleanup steps that did not finish (set when the runner has ended). */
  leftovers?: string[];
}
