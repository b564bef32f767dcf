/**
 * The one module that builds and parses the names Ekiden gives to things it creates:
 * VMs, GitHub runners, workflow ids and task queues. Garbage collection relies on parse*
 * so it only ever touches Ekiden's own objects. Pure module: safe in workflow code.
 */

export const VM_PREFIX = 'ekiden-';
export const RUNNER_PREFIX = 'ekiden-';

const SLUG = /^[a-z0-9][a-z0-9-]{0,30}$/;

/** Lower-case, dash-separated, at most 31 chars: safe for VM names, runner names and ids. */
export function isSlug(value: string): boolean {
  return SLUG.test(value) && !value.endsWith('-') && !value.includes('--');
}

export function assertSlug(field: string, value: string): void {
  if (!isSlug(value)) {
    throw new Error(
      `${field}: "${value}" is not a valid name; use 1-31 lower-case letters, digits and single dashes, starting with a letter or digit`,
    );
  }
}

export function hostTaskQueue(hostId: string): string {
  return `ekiden-host-${hostId}`;
}

/** Task queue for work that may run on any worker (GitHub calls). */
export const SHARED_TASK_QUEUE = 'ekiden';

export function runnerWorkflowId(pool: string, slot: string | number): string {
  return `runner/${pool}/${slot}`;
}

export function poolWorkflowId(pool: string): string {
  return `pool/${pool}`;
}

/** The workflow that tracks one host: its announcement, liveness and VM slots. */
export function hostWorkflowId(host: string): string {
  return `host/${host}`;
}

/**
 * The Temporal Schedule of the control plane's fleet-wide round (GitHub reconciliation,
 * image-cache GC): one per fleet, a fleet being the shared task queue its workflows run on.
 */
export function fleetScheduleId(sharedTaskQueue: string): string {
  return `fleet/${sharedTaskQueue}`;
}

/** Workflow id of the rounds the fleet schedule starts (Temporal appends the scheduled time). */
export function fleetRoundWorkflowId(sharedTaskQueue: string): string {
  return `fleet-round/${sharedTaskQueue}`;
}

/** Characters in a run token: 13 base-36 digits carry all 64 bits of the hash. */
export const RUN_TOKEN_LENGTH = 13;

/**
 * Deterministic token derived from a workflow run id: stable across activity retries and
 * worker restarts, distinct between runs (and so between recycled runners). 64 bits (FNV-1a),
 * so two live runners of a pool share a token with odds of about n²/2⁶⁵: at a million runners
 * a day, once in tens of thousands of years even if every one of them were alive at once.
 */
export function runToken(runId: string): string {
  let h = 0xcbf29ce484222325n;
  for (let i = 0; i < runId.length; i++) {
    h ^= BigInt(runId.charCodeAt(i));
    h = (h * 0x100000001b3n) & 0xffffffffffffffffn;
  }
  return h.toString(36).padStart(RUN_TOKEN_LENGTH, '0');
}

export interface VmNameParts {
  pool: string;
  token: string;
  attempt: number;
}

/** VM name: ekiden-<pool>-<token>-<attempt>. The attempt counts fresh VMs within one run. */
export function vmName(parts: VmNameParts): string {
  return `${VM_PREFIX}${parts.pool}-${parts.token}-${parts.attempt}`;
}

export function parseVmName(name: string): VmNameParts | undefined {
  if (!name.startsWith(VM_PREFIX)) return undefined;
  const m = /^([a-z0-9][a-z0-9-]*)-([0-9a-z]{13})-(\d+)$/.exec(name.slice(VM_PREFIX.length));
  if (!m) return undefined;
  return { pool: m[1]!, token: m[2]!, attempt: Number(m[3]) };
}

export interface RunnerNameParts {
  pool: string;
  token: string;
}

/** GitHub runner name: ekiden-<pool>-<token>. One registration per workflow run. */
export function runnerName(parts: RunnerNameParts): string {
  return `${RUNNER_PREFIX}${parts.pool}-${parts.token}`;
}

export function parseRunnerName(name: string): RunnerNameParts | undefined {
  if (!name.startsWith(RUNNER_PREFIX)) return undefined;
  const m = /^([a-z0-9][a-z0-9-]*)-([0-9a-z]{13})$/.exec(name.slice(RUNNER_PREFIX.length));
  if (!m) return undefined;
  return { pool: m[1]!, token: m[2]! };
}

/** The catalog of one image: its builds and the current digest. */
export function imageCatalogWorkflowId(image: string): string {
  return `image/${image}`;
}

/** One build of an image; `build` is a slug of the caller's (a time stamp, a counter). */
export function imageBuildWorkflowId(image: string, build: string): string {
  return `image-build/${image}/${build}`;
}

/** The Temporal Schedule that rebuilds an image (its runs get `-<time>` appended by Temporal). */
export function imageScheduleId(image: string): string {
  return `image-build/${image}`;
}

/** A pool's image `catalog:NAME` follows the catalog of image NAME. */
export const CATALOG_PREFIX = 'catalog:';

/** The image a pool's `catalog:NAME` image follows, or undefined for any other image ref. */
export function catalogImageName(image: string): string | undefined {
  return image.startsWith(CATALOG_PREFIX) ? image.slice(CATALOG_PREFIX.length) : undefined;
}
