/**
 * Worker Versioning for the control plane (docs/upgrades.md): every control-plane worker polls
 * the fleet's shared queue as one version (`deployment`, `buildId`) of a Temporal Worker
 * Deployment. Tasks go to the deployment's current version; a pinned workflow (a runner, an
 * image build, a fleet round) stays on the version it started on until it ends, and the
 * long-lived ones (pools, hosts, image catalogs) move to the current version at their next
 * task.
 *
 * A deployment without a current version sends its tasks to unversioned workers, i.e. nowhere:
 * the first version to arrive makes itself current (`ensureCurrentVersion`). After that only an
 * operator moves it (`ekiden deployment promote BUILD_ID`), so a restarted old worker never
 * takes the fleet back.
 */
import type { Client } from '@temporalio/client';
import { setTimeout as delay } from 'node:timers/promises';
import { grpcCode } from './namespace-setup.js';

const NOT_FOUND = 5;
const FAILED_PRECONDITION = 9;

export interface DeploymentVersion {
  deployment: string;
  buildId: string;
}

export interface VersionSummary {
  buildId: string;
  /** Temporal's word for it: current, ramping, draining (pinned workflows remain), drained, inactive. */
  status: string;
  /** Open workflows pinned to this version (from visibility, so it can lag a few seconds). */
  pinned: number;
  /** Workers polling the shared queue as this version now. */
  pollers: number;
}

export interface DeploymentState {
  deployment: string;
  current?: string;
  ramping?: { buildId: string; percentage: number };
  versions: VersionSummary[];
}

/** `deployment:buildId`, as visibility's TemporalWorkerDeploymentVersion holds it. */
export function versionKey(v: DeploymentVersion): string {
  return `${v.deployment}:${v.buildId}`;
}

const STATUS_WORDS: Record<number, string> = { 1: 'inactive', 2: 'current', 3: 'ramping', 4: 'draining', 5: 'drained' };

function notFound(err: unknown): boolean {
  return grpcCode(err) === NOT_FOUND;
}

/** The deployment's routing and versions, or undefined when no worker of it ever polled. */
export async function describeDeployment(client: Client, deployment: string, taskQueue: string): Promise<DeploymentState | undefined> {
  let info;
  try {
    info = (await client.workflowService.describeWorkerDeployment({ namespace: client.options.namespace, deploymentName: deployment })).workerDeploymentInfo;
  } catch (err) {
    if (notFound(err)) return undefined;
    throw err;
  }
  const routing = info?.routingConfig;
  const current = routing?.currentDeploymentVersion?.buildId || undefined;
  const rampingId = routing?.rampingDeploymentVersion?.buildId || undefined;
  const [pollers, pinned] = await Promise.all([versionPollers(client, taskQueue), pinnedByVersion(client, taskQueue)]);
  const versions = (info?.versionSummaries ?? []).map((s): VersionSummary => {
    const buildId = s.deploymentVersion?.buildId ?? '';
    return {
      buildId,
      status: STATUS_WORDS[s.status ?? 0] ?? (buildId === current ? 'current' : 'unknown'),
      pinned: pinned.get(versionKey({ deployment, buildId })) ?? 0,
      pollers: pollers.get(buildId) ?? 0,
    };
  });
  versions.sort((a, b) => (a.buildId < b.buildId ? 1 : a.buildId > b.buildId ? -1 : 0));
  return {
    deployment,
    ...(current ? { current } : {}),
    ...(rampingId ? { ramping: { buildId: rampingId, percentage: routing?.rampingVersionPercentage ?? 0 } } : {}),
    versions,
  };
}

/**
 * Open workflows on `taskQueue` pinned to a Worker Deployment version, counted by
 * `deployment:buildId` (versionKey), from one visibility listing.
 */
export async function pinnedByVersion(client: Client, taskQueue: string): Promise<Map<string, number>> {
  const counts = new Map<string, number>();
  const query = `TaskQueue = "${taskQueue}" AND ExecutionStatus = "Running" AND TemporalWorkflowVersioningBehavior = "Pinned"`;
  for await (const w of client.workflow.list({ query, pageSize: 1000 })) {
    // A system attribute: not in typedSearchAttributes.
    const version = (w.searchAttributes as Record<string, unknown[] | undefined>)['TemporalWorkerDeploymentVersion']?.[0];
    if (typeof version === 'string') counts.set(version, (counts.get(version) ?? 0) + 1);
  }
  return counts;
}

/** Workflow pollers of the shared queue by build id (versioned pollers only). */
async function versionPollers(client: Client, taskQueue: string): Promise<Map<string, number>> {
  const r = await client.workflowService.describeTaskQueue({ namespace: client.options.namespace, taskQueue: { name: taskQueue }, taskQueueType: 1 });
  const byBuild = new Map<string, number>();
  for (const p of r.pollers ?? []) {
    const id = p.deploymentOptions?.buildId;
    if (id) byBuild.set(id, (byBuild.get(id) ?? 0) + 1);
  }
  return byBuild;
}

export type EnsureOutcome = { action: 'made-current' } | { action: 'current' } | { action: 'not-current'; current: string };

/**
 * Makes `v` the current version when the deployment has none (a first deployment); leaves a
 * deployment that has one alone. The version exists once a worker of it has polled, which
 * takes a moment after the worker starts: a not-found is retried for up to `waitMs`.
 */
export async function ensureCurrentVersion(
  client: Client,
  v: DeploymentVersion,
  identity: string,
  opts: { waitMs?: number; stopped?: () => boolean } = {},
): Promise<EnsureOutcome> {
  const waitMs = opts.waitMs ?? 30_000;
  const deadline = Date.now() + waitMs;
  for (;;) {
    if (opts.stopped?.()) throw new Error('the worker stopped before its version appeared');
    let info;
    try {
      info = (await client.workflowService.describeWorkerDeployment({ namespace: client.options.namespace, deploymentName: v.deployment })).workerDeploymentInfo;
    } catch (err) {
      if (!notFound(err) || Date.now() > deadline) throw err;
      await delay(300);
      continue;
    }
    const current = info?.routingConfig?.currentDeploymentVersion?.buildId;
    if (current) return current === v.buildId ? { action: 'current' } : { action: 'not-current', current };
    const known = (info?.versionSummaries ?? []).some((s) => s.deploymentVersion?.buildId === v.buildId);
    if (known) {
      await setCurrentVersion(client, v, identity, waitMs);
      return { action: 'made-current' };
    }
    if (Date.now() > deadline) throw new Error(`version ${v.buildId} of deployment ${v.deployment} did not appear within ${Math.round(waitMs / 1000)}s`);
    await delay(300);
  }
}

/** Sends new workflows (and the next task of every auto-upgrading one) to `v`. */
export async function setCurrentVersion(client: Client, v: DeploymentVersion, identity: string, waitMs = 0): Promise<void> {
  const deadline = Date.now() + waitMs;
  for (;;) {
    try {
      await client.workflowService.setWorkerDeploymentCurrentVersion({
        namespace: client.options.namespace,
        deploymentName: v.deployment,
        buildId: v.buildId,
        identity,
      });
      return;
    } catch (err) {
      // A version whose workers have not polled yet is unknown for a moment.
      const code = grpcCode(err);
      if ((code !== NOT_FOUND && code !== FAILED_PRECONDITION) || Date.now() > deadline) throw err;
      await delay(300);
    }
  }
}

/**
 * Sends `percentage` % of new workflows (and of auto-upgrading ones, by workflow id) to `v`
 * instead of the current version; `v` undefined ends the ramp.
 */
export async function setRampingVersion(client: Client, deployment: string, v: { buildId: string; percentage: number } | undefined, identity: string): Promise<void> {
  await client.workflowService.setWorkerDeploymentRampingVersion({
    namespace: client.options.namespace,
    deploymentName: deployment,
    buildId: v?.buildId ?? '',
    percentage: v?.percentage ?? 0,
    identity,
  });
}
