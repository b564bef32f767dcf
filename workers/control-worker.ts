/**
 * The control plane's Temporal worker: the fleet's shared task queue — every workflow, the
 * GitHub activities and the fleet activities that talk to Temporal (slots, visibility, image
 * catalogs). It holds no VM: any number of them may run, anywhere (`ekiden control` on a
 * machine of its own, or inside a host worker whose host says `control: true`, or `ekiden up`).
 *
 * At start it removes orphan GitHub registrations once and makes the fleet schedule match
 * (temporal/fleet-schedule.ts); the fleet-wide work then happens on that schedule.
 */
import type { Client } from '@temporalio/client';
import { Runtime, Worker, type ActivityInboundCallsInterceptorFactory, type NativeConnection } from '@temporalio/worker';
import { createFleetSharedActivities, reconcileGitHubNow } from '../activities/fleet.js';
import { createGitHubActivities } from '../activities/github.js';
import { createImageSharedActivities } from '../activities/images.js';
import { errorMessage } from '../core/failures.js';
import { fleetScheduleId, SHARED_TASK_QUEUE } from '../core/names.js';
import type { RunnerRegistry } from '../github/runners.js';
import type { RegistryEndpoint } from '../registry/client.js';
import { ensureCurrentVersion, type DeploymentVersion } from '../temporal/deployment.js';
import { ensureFleetSchedule, type FleetScheduleOptions } from '../temporal/fleet-schedule.js';

export interface ControlWorkerOptions {
  connection: NativeConnection;
  namespace: string;
  github: RunnerRegistry;
  /** Prebuilt workflow bundle (dist/workflow-bundle.js). */
  workflowBundlePath: string;
  /** The fleet's shared queue (default `ekiden`). */
  taskQueue?: string;
  /** Without a client: workflows and GitHub activities only (no fleet activities, no schedule). */
  client?: Client;
  /** The fleet's registry: the fleet round deletes pruned builds there (absent: registry retention is off). */
  registry?: RegistryEndpoint;
  /**
   * Poll as this version of a Worker Deployment (temporal/deployment.ts, docs/upgrades.md):
   * runners, image builds and fleet rounds are pinned to the version they start on; pools, hosts
   * and image catalogs move to the current version. Absent: an unversioned worker.
   */
  versioning?: DeploymentVersion;
  /** The fleet schedule this worker keeps (absent: it leaves the schedule alone). */
  fleetSchedule?: FleetScheduleOptions;
  confirmDelayMs?: number;
  shutdownGraceMs?: number;
  activityInbound?: ActivityInboundCallsInterceptorFactory[];
  identity: string;
}

export interface ControlArrival {
  /** Orphan GitHub registrations removed at start. */
  removedRunners: string[];
  /** What the fleet schedule needed (absent when this worker keeps none). */
  schedule?: string;
  /** With versioning: whether this version was made current, already was, or another one is. */
  version?: string;
}

export interface ControlWorker {
  worker: Worker;
  /** Once the worker runs: GitHub reconciliation at start, then the fleet schedule. Failures are logged, not thrown. */
  arrive(): Promise<ControlArrival>;
}

export async function createControlWorker(opts: ControlWorkerOptions): Promise<ControlWorker> {
  const taskQueue = opts.taskQueue ?? SHARED_TASK_QUEUE;
  const client = opts.client;
  const worker = await Worker.create({
    connection: opts.connection,
    namespace: opts.namespace,
    taskQueue,
    workflowBundle: { codePath: opts.workflowBundlePath },
    activities: {
      ...createGitHubActivities({ github: opts.github }),
      ...(client ? createFleetSharedActivities({ client, github: opts.github }) : {}),
      ...(client ? createImageSharedActivities({ client, ...(opts.registry ? { registry: opts.registry } : {}) }) : {}),
    },
    interceptors: { activityInbound: opts.activityInbound ?? [] },
    shutdownGraceTime: opts.shutdownGraceMs ?? 10_000,
    identity: opts.identity,
    ...(opts.versioning
      ? {
          workerDeploymentOptions: {
            useWorkerVersioning: true,
            version: { deploymentName: opts.versioning.deployment, buildId: opts.versioning.buildId },
            // Each workflow says its own behaviour (setWorkflowOptions); one that does not stays where it started.
            defaultVersioningBehavior: 'PINNED' as const,
          },
        }
      : {}),
  });
  const arrive = async (): Promise<ControlArrival> => {
    const arrival: ControlArrival = { removedRunners: [] };
    if (!client) return arrival;
    if (opts.versioning) arrival.version = await joinDeployment(client, opts.versioning, opts.identity, () => !['INITIALIZED', 'RUNNING'].includes(worker.getState()));
    try {
      arrival.removedRunners = await reconcileGitHubNow({ client, github: opts.github }, opts.confirmDelayMs ?? 2_000);
      if (arrival.removedRunners.length > 0) log('INFO', 'removed orphan GitHub runners at start', { removed: arrival.removedRunners });
    } catch (err) {
      log('WARN', 'GitHub reconciliation at start failed; the fleet round retries', { message: errorMessage(err) });
    }
    if (opts.fleetSchedule) {
      try {
        const outcome = await ensureFleetSchedule(client, taskQueue, opts.fleetSchedule);
        arrival.schedule = outcome.action;
        if (outcome.action !== 'unchanged') {
          log('INFO', `fleet schedule ${outcome.action}`, { schedule: fleetScheduleId(taskQueue), everyMs: opts.fleetSchedule.intervalMs, ...('changes' in outcome ? { changes: outcome.changes } : {}) });
        }
      } catch (err) {
        log('WARN', 'could not make the fleet schedule match; the next control-plane start retries', { schedule: fleetScheduleId(taskQueue), message: errorMessage(err) });
      }
    }
    return arrival;
  };
  return { worker, arrive };
}

/** A first version makes itself current; a later one says how to promote it (never by itself: a restarted old worker must not take the fleet back). */
async function joinDeployment(client: Client, v: DeploymentVersion, identity: string, stopped: () => boolean): Promise<string> {
  const fields = { deployment: v.deployment, buildId: v.buildId };
  try {
    const outcome = await ensureCurrentVersion(client, v, identity, { stopped });
    if (outcome.action === 'made-current') log('INFO', 'made this version current: the deployment had none', fields);
    else if (outcome.action === 'not-current') {
      log('WARN', `version ${outcome.current} is current: this worker serves the workflows pinned to ${v.buildId}, and new ones once \`ekiden deployment promote ${v.buildId}\` runs`, { ...fields, current: outcome.current });
      return `not current (${outcome.current} is)`;
    }
    return outcome.action;
  } catch (err) {
    log('WARN', 'could not read or set the deployment\'s current version; `ekiden deployment status` shows it', { ...fields, message: errorMessage(err) });
    return 'unknown';
  }
}

/** Through the process's Runtime logger (JSON lines; a file under `ekiden up`). */
export function log(level: 'INFO' | 'WARN', msg: string, fields: Record<string, unknown>): void {
  const logger = Runtime.instance().logger;
  if (level === 'WARN') logger.warn(msg, fields);
  else logger.info(msg, fields);
}
