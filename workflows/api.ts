/**
 * The contract of Ekiden's workflows: every signal, query and update they accept, with the
 * shapes they exchange and the inputs they start with. The workflows, the CLI, the webhook
 * receiver, the host workers and the tests all import these definitions; nobody names a
 * message by a string.
 *
 * Wire names (durable once a fleet runs; see docs/contract.md):
 * - bare lowerCamelCase, no kind suffix: the definition `fooBarSignal` is sent as `fooBar`
 *   (test/workflows/api.test.ts holds every definition to this);
 * - commands (updates, and signals that ask for something) are verb + object:
 *   `scalePool`, `acquireSlot`, `retireRunner`;
 * - notifications (signals that report something) are subject + what happened:
 *   `jobQueued`, `runnerEnded`, `hostDown`;
 * - queries are `<noun>Status`.
 *
 * Definitions and types only (no workflow code runs here), so clients import it freely.
 */
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import type { PoolRunnerPhase } from '../core/pool-policy.js';
import type { RunnerOutcome, RunnerSpec, RunnerStatus, RunnerTiming } from '../core/runner-spec.js';

export type { PoolRunnerPhase };

// ───────────────────────────── runners ─────────────────────────────

export const runnerStatusQuery = defineQuery<RunnerStatus>('runnerStatus');
/** From the webhook receiver when GitHub reports the runner's job (the job id, for the UI). */
export const jobAssignedSignal = defineSignal<[{ jobId: string }]>('jobAssigned');
/** From a pool to an idle runner it no longer needs: deregistered first, so a job that just landed still runs. */
export const retireRunnerSignal = defineSignal('retireRunner');
/** From a HostWorkflow when the runner's host is marked down: GitHub cleanup only, the VM is left to reconciliation. */
export const hostDownSignal = defineSignal('hostDown');

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
  /** Every runner's timing, resolved at the edge (core/defaults.ts). */
  timing: RunnerTiming;
  /** Delay before replacing failing runners: initialMs, doubling up to maxMs. */
  backoff: PoolBackoff;
  /** Stop after this many runner lives (demos and tests); unlimited when absent. */
  maxRunners?: number;
}

export interface PoolBackoff {
  initialMs: number;
  maxMs: number;
}

/** How a pool runs itself (not what it runs): resolved at the edge like the config. */
export interface PoolTuning {
  /** Continue-as-new after this many history events. */
  maxHistoryEvents: number;
  /** A queued job nobody reported on is forgotten after this. */
  queuedJobTtlMs: number;
  /** When every host refuses a slot, ask again after this. */
  hostRetryMs: number;
  /** Check that runners the pool still counts are really open, this often. */
  auditIntervalMs: number;
}

/** Everything a pool remembers, carried across continue-as-new. */
export interface PoolState {
  draining: boolean;
  /** Runners started so far (the next runner's workflow id is runner/<pool>/<seq + 1>). */
  seq: number;
  runners: PoolRunnerView[];
  /** Idle runners told to retire that have not ended yet (not counted toward the target). */
  retiring: string[];
  /** Queued job id → epoch ms it was queued. */
  queued: Record<string, number>;
  /** Jobs already picked up or finished (late `queued` redeliveries are ignored). */
  doneJobs: string[];
  completed: number;
  failed: number;
  consecutiveFailures: number;
  backoffUntil?: number;
  recentFailures: PoolFailure[];
  runs: number;
  lastAuditAt: number;
  /** A pool following an image's catalog (`image: catalog:NAME`): the build it starts runners on. */
  image?: PoolImage;
}

/** The image build a pool that follows a catalog runs new runners on. */
export interface PoolImage {
  /** `registry/repository@sha256:…`, as the driver pulls it. */
  ref: string;
  digest: string;
}

export interface PoolWorkflowInput {
  config: PoolConfig;
  tuning: PoolTuning;
  /** Carried across continue-as-new; absent on the first run. */
  state?: PoolState;
}

export interface PoolScale {
  size?: number;
  minIdle?: number;
  max?: number;
}


export interface PoolRunnerView {
  workflowId: string;
  /** Its GitHub runner name (from the child's run id), to match `in_progress` webhooks. */
  runnerName?: string;
  host: string;
  phase: PoolRunnerPhase;
  /** Epoch ms when the runner entered this phase. */
  since: number;
  startedAt: number;
  /** Its end was counted already (a failed runner reports the failure as its cleanup starts). */
  endCounted?: boolean;
  /** The image digest it was started on, when the pool pins one. */
  imageDigest?: string;
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
  /** Idle runners told to retire that have not ended yet (not counted toward the target). */
  retiring: number;
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
  /** A pool following a catalog: the build new runners start on, and idle runners still on older ones. */
  image?: PoolImage & { staleRunners: number };
}

export const poolStatusQuery = defineQuery<PoolStatus>('poolStatus');
export interface ImagePromotion {
  image: string;
  ref: string;
  digest: string;
}
/** From an image's catalog to the pools following it, once the build's hosts hold it: new runners start on it, idle ones on older builds are recycled a few at a time. */
export const imagePromotedSignal = defineSignal<[ImagePromotion]>('imagePromoted');
/** Change size / minIdle / max. Rejected (nothing changes) when the values are invalid. */
export const scalePoolUpdate = defineUpdate<PoolStatus, [PoolScale]>('scalePool');
/** Running jobs finish; no new runners start; idle runners are retired. */
export const drainPoolUpdate = defineUpdate<PoolStatus, []>('drainPool');
/** Undo a drain. */
export const resumePoolUpdate = defineUpdate<PoolStatus, []>('resumePool');

export interface QueuedJob {
  jobId: string;
  labels: string[];
}
/** A `workflow_job` `queued` webhook routed to this pool (idempotent per job id). */
export const jobQueuedSignal = defineSignal<[QueuedJob]>('jobQueued');
export interface JobProgress {
  jobId: string;
  action: 'in_progress' | 'completed';
  /** The runner GitHub gave the job to (in_progress). */
  runnerName?: string;
}
/** A `workflow_job` `in_progress` / `completed` webhook: the job no longer waits. */
export const jobProgressedSignal = defineSignal<[JobProgress]>('jobProgressed');

export interface RunnerPhaseChange {
  workflowId: string;
  phase: PoolRunnerPhase;
  /** With `cleaning` after a failure: the pool counts it (and backs off) now, not after the cleanup. */
  failure?: { outcome: RunnerOutcome; message?: string };
}
/** From a RunnerWorkflow to its pool when it changes phase. */
export const runnerPhaseChangedSignal = defineSignal<[RunnerPhaseChange]>('runnerPhaseChanged');

export interface RunnerEnd {
  workflowId: string;
  outcome: RunnerOutcome;
  failed: boolean;
  message?: string;
}
/** From a RunnerWorkflow to its pool when its life (cleanup included) is over. */
export const runnerEndedSignal = defineSignal<[RunnerEnd]>('runnerEnded');

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

export interface HostTiming {
  /** How often a host that is down is pinged. */
  pingIntervalMs: number;
  /** A host whose worker stops heartbeating, then picks up no ping, within this (each) is down. */
  downAfterMs: number;
  /** Length of one watch (a heartbeating activity on the host) while the host is up. */
  watchMs: number;
  /** Reconciliation (orphan VMs, credentials, GitHub runners) every this often. */
  reconcileIntervalMs: number;
  /** Ownership is looked up twice this far apart before anything is removed. */
  confirmDelayMs: number;
  /** Continue-as-new after this many history events. */
  maxHistoryEvents: number;
}

export interface HostWorkflowInput {
  id: string;
  timing: HostTiming;
  /** Carried across continue-as-new. */
  state?: HostStatus;
  lastReconcileAt?: number;
}

export interface SlotRequest {
  workflowId: string;
  pool: string;
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
  /** Every reconciliation on this host so far: rounds and leaks caught, by kind. */
  reconciled?: { rounds: number; vms: number; credentials: number };
  /** The host's image cache as the last fleet round found it (GC included). */
  images?: HostImages;
}

/** A host's image cache: what it holds, against its budget, and what GC removed. */
export interface HostImages {
  /** Epoch ms of the round. */
  at: number;
  held: Array<{ digest: string; bytes: number; lastUsedMs: number }>;
  bytes: number;
  budgetBytes: number;
  retentionMs: number;
  /** Deleted by this round's GC. */
  deleted: string[];
  /** Deleted by GC on this host so far (all rounds). */
  deletedTotal: number;
  /** Why this round deleted nothing it might have (the fleet's references could not all be read). */
  gcSkipped?: string;
}

export const hostStatusQuery = defineQuery<HostStatus>('hostStatus');
export const announceHostSignal = defineSignal<[HostAnnouncement]>('announceHost');
/** Take a slot on the host for a runner (idempotent per workflowId); rejected when full or down. */
export const acquireSlotUpdate = defineUpdate<HostLease, [SlotRequest]>('acquireSlot');
/** Give a slot back (idempotent). */
export const releaseSlotSignal = defineSignal<[{ workflowId: string }]>('releaseSlot');
/** Stop watching the host (operator retired it). */
export const retireHostSignal = defineSignal('retireHost');
/** From the fleet round: what the host's image cache holds after its GC (`deletedTotal` is kept by the host). */
export const hostImagesSignal = defineSignal<[Omit<HostImages, 'deletedTotal'>]>('hostImages');

// ───────────────────────────── the fleet round ─────────────────────────────

export interface FleetRoundInput {
  /** Ownership is looked up twice this far apart before anything is removed. */
  confirmDelayMs: number;
  /** A host whose worker does not pick up its GC step within this is skipped this round. */
  hostTimeoutMs: number;
}

/** One round of fleet-wide work (the fleet schedule's workflow result, shown in the Web UI). */
export interface FleetRoundResult {
  /** Offline GitHub runners named like Ekiden's and owned by no open runner, removed. */
  github: { removed: string[] } | { error: string };
  /** Image digests the fleet may still start a runner on; `complete` false when some pool or catalog did not answer (no GC then). */
  references: { digests: number; complete: boolean } | { error: string };
  /** Registry retention per image (absent: the references were incomplete, or a round from before it). */
  registry?: Array<{ image: string; repository?: string; deleted: string[]; skipped?: string }>;
  hosts: Array<{ id: string; state: HostStatus['state']; images?: { held: number; bytes: number; deleted: string[]; gcSkipped?: string }; error?: string }>;
}


// ───────────────────────────── images ─────────────────────────────

export type ImageKind = 'qemu' | 'tart';

/**
 * What one build of an image runs, resolved at the edge from the fleet file's `images:` entry.
 * No secret: Packer variables the file names by environment variable are listed by name in
 * `variablesFromEnv` and read on the build host when the build runs.
 */
export interface ImageBuildSpec {
  name: string;
  kind: ImageKind;
  /** Packer template (file or directory), absolute path on the build hosts. */
  template: string;
  variables: Record<string, string | number | boolean | string[]>;
  /** Packer variable → the environment variable on the build host holding its value. */
  variablesFromEnv: Record<string, string>;
  /** The image it is built on: an image ref (`qemu:NAME`, an OCI ref) and/or a digest. */
  base: { ref?: string; digest?: string };
  /** Where builds are pushed: the registry's host[:port] and the repository in it. */
  registry: string;
  repository: string;
  buildHosts: string[];
  buildTimeoutMs: number;
  smokeTimeoutMs: number;
  /** Promote a green build at once (auto) or only by `ekiden image promote` (manual). */
  promote: 'auto' | 'manual';
  /** Builds kept in the catalog (and the registry) besides the current one. */
  keep: number;
}

export interface ImageBuildInput {
  spec: ImageBuildSpec;
  trigger: 'schedule' | 'manual';
  /** A host step whose worker stops heartbeating this long is retried elsewhere or later (default 60 s). */
  heartbeatTimeoutMs?: number;
}

/** A build that passed its smoke test and was pushed: what the digest contains. */
export interface ImageBuildRecord {
  image: string;
  /** The build's workflow id. */
  buildId: string;
  /** Manifest digest in the registry (`sha256:…`): what hosts pull and pools pin. */
  digest: string;
  /** `registry/repository@digest`. */
  ref: string;
  bytes: number;
  runnerVersion: string;
  baseDigest: string;
  templateHash: string;
  /** ISO 8601, when the push completed. */
  builtAt: string;
  host: string;
  durationMs: number;
}

export type ImageBuildStep = 'preparing' | 'building' | 'smoke-test' | 'pushing' | 'recording' | 'done' | 'failed' | 'cancelled';

export interface ImageBuildStatus {
  image: string;
  buildId: string;
  host: string;
  /** The step running now; the Packer step and the bytes pushed are that activity's heartbeat details (ImageProgressDetails). */
  step: ImageBuildStep;
  startedAt: number;
  result?: ImageBuildRecord;
  failure?: string;
}

export const imageBuildStatusQuery = defineQuery<ImageBuildStatus>('imageBuildStatus');

export interface CatalogEntry extends ImageBuildRecord {
  /** ISO 8601, when it became current (most recently). */
  promotedAt?: string;
}

export interface ImageBuildFailure {
  buildId: string;
  /** ISO 8601. */
  at: string;
  message: string;
}

/** ImageCatalogWorkflow `image/<name>`: the image's builds and which one is current. */
export interface ImageCatalogStatus {
  image: string;
  /** The promoted digest every pool following the image runs new runners on. */
  current?: string;
  /** Digests that were current before, newest first (what `rollback` goes back to). */
  previous: string[];
  /** Recorded builds, newest first: the current one and `keep` others (what a rollback reaches first). */
  builds: CatalogEntry[];
  keep: number;
  lastFailure?: ImageBuildFailure;
  /** Consecutive failed builds since the last green one. */
  failingSince?: string;
  consecutiveFailures: number;
  /** The last promotion's way to the fleet: hosts prefetching it, then the pools told. */
  rollout?: ImageRollout;
}

export interface ImageRollout {
  digest: string;
  /** ISO 8601. */
  startedAt: string;
  state: 'prefetching' | 'notifying' | 'done';
  hostsReady: string[];
  /** Hosts whose prefetch failed, with why (their runners pull when they start). */
  hostsFailed: Array<{ host: string; message: string }>;
  pools: string[];
}

export interface ImageCatalogInput {
  image: string;
  keep: number;
  promote: 'auto' | 'manual';
  /** Carried across continue-as-new. */
  state?: ImageCatalogStatus;
  /** A promotion not yet rolled out to the fleet when the run continued as new. */
  pendingRollout?: string;
}

export const imageStatusQuery = defineQuery<ImageCatalogStatus>('imageStatus');
/** From a green build: recorded, and promoted when the image promotes automatically. */
export const imageBuiltSignal = defineSignal<[ImageBuildRecord]>('imageBuilt');
/** From a failed build: the last good image stays current; status shows the failure. */
export const imageBuildFailedSignal = defineSignal<[ImageBuildFailure]>('imageBuildFailed');
/** Make a recorded build current. Rejected for a digest the catalog does not hold. */
export const promoteImageUpdate = defineUpdate<ImageCatalogStatus, [{ digest: string }]>('promoteImage');
/** Make the previous current build current again. Rejected when there is none. */
export const rollbackImageUpdate = defineUpdate<ImageCatalogStatus, []>('rollbackImage');
