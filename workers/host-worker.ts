/**
 * A host worker: serves the host's own task queue (VM and SSH activities for the VMs on this
 * machine) and, when its host also runs the control plane, the shared queue (workflows, GitHub
 * and fleet activities; workers/control-worker.ts). On shutdown it stops
 * polling and gives running activities `shutdownGraceMs` to finish; VMs and guest runners
 * keep running regardless, and the workflows re-attach when a worker returns.
 */
import type { Client } from '@temporalio/client';
import { NativeConnection, Worker, type ActivityInboundCallsInterceptorFactory } from '@temporalio/worker';
import { readFileSync } from 'node:fs';
import { availableParallelism, hostname } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createFleetHostActivities, reconcileHostNow } from '../activities/fleet.js';
import { createImageHostActivities } from '../activities/images.js';
import { defaultQemuImagesDir } from '../drivers/qemu-image.js';
import { QemuDriver } from '../drivers/qemu.js';
import { DEFAULT_IMAGE_CACHE } from '../config/fleet.js';
import { ImageCache } from '../host/image-cache.js';
import type { RegistryEndpoint } from '../registry/client.js';
import { createHostActivities } from '../activities/host.js';
import { hostTaskQueue, hostWorkflowId, SHARED_TASK_QUEUE } from '../core/names.js';
import type { DeploymentVersion } from '../temporal/deployment.js';
import type { FleetScheduleOptions } from '../temporal/fleet-schedule.js';
import { createControlWorker, log, type ControlWorker } from './control-worker.js';
import { defaultCapacity, resolveHostTiming } from '../core/defaults.js';
import { errorMessage } from '../core/failures.js';
import { announceHostSignal, type HostAnnouncement, type HostTiming } from '../workflows/api.js';
import type { HostWorkflow } from '../workflows/host.js';
import type { VmDriver } from '../drivers/types.js';
import type { RunnerRegistry } from '../github/runners.js';
import { CredentialStore } from '../host/credential-store.js';
import { HostKeyPins } from '../host/host-keys.js';

export interface HostWorkerOptions {
  connection: NativeConnection;
  namespace: string;
  hostId: string;
  driver: VmDriver;
  github: RunnerRegistry;
  githubRunnerUrl: string;
  /** Host state: credentials, collected logs. */
  dataDir: string;
  /** Prebuilt workflow bundle (dist/workflow-bundle.js). */
  workflowBundlePath: string;
  shutdownGraceMs?: number;
  pollIntervalMs?: number;
  /** Serve the control plane too: workflows, GitHub and fleet activities (default true; see workers/control-worker.ts). */
  serveShared?: boolean;
  /** With serveShared and a client: keep the fleet schedule (fleet-wide GitHub reconciliation and image GC). */
  fleetSchedule?: FleetScheduleOptions;
  /** With serveShared: the Worker Deployment version its control-plane worker polls as (workers/control-worker.ts). */
  versioning?: DeploymentVersion;
  /** Serve this host's VM activities (default true; false for a workflow-only worker). */
  serveHost?: boolean;
  /** Queue for workflows and GitHub activities (default `ekiden`). */
  sharedTaskQueue?: string;
  /** Extra activity interceptors (test hooks). */
  activityInbound?: ActivityInboundCallsInterceptorFactory[];
  /**
   * A client for the fleet: with it the worker reconciles at start (orphan VMs, credentials,
   * GitHub registrations), announces the host (HostWorkflow `host/<id>`) and serves the
   * slot and liveness activities.
   */
  client?: Client;
  /** VMs at once on this host (default: tart 2, qemu half the CPUs, fake 4). */
  capacity?: number;
  labels?: string[];
  /** HostWorkflow timing, used when this worker is the first to announce the host. */
  hostTiming?: Partial<HostTiming>;
  /** Ownership is looked up twice this far apart before reconciliation removes anything. */
  confirmDelayMs?: number;
  /** Image builds and transfers on this host (registry credentials in memory only). */
  images?: HostImageOptions;
}

export interface HostImageOptions {
  registry?: RegistryEndpoint;
  /** The host's image cache, shared with its driver (default: hostImageCache(dataDir)). */
  cache?: ImageCache;
  /** Where `qemu:NAME` images are (the QEMU driver's imagesDir); default the image cache of images/ensure-image.sh. */
  qemuImagesDir?: string;
  /** Disk the host's content-addressed image cache may use (default 200 GiB). */
  cacheBudgetBytes?: number;
  /** Unused images no pool references are kept this long (default 7 days). */
  cacheRetentionMs?: number;
  accel?: 'auto' | 'kvm' | 'tcg';
}

/** The content-addressed image cache of the host whose data dir is `dataDir` (`<dataDir>/image-cache`). */
export function hostImageCache(dataDir: string, opts: { cacheBudgetBytes?: number; cacheRetentionMs?: number } = {}): ImageCache {
  return new ImageCache({
    root: join(dataDir, 'image-cache'),
    budgetBytes: opts.cacheBudgetBytes ?? DEFAULT_IMAGE_CACHE.budgetBytes,
    retentionMs: opts.cacheRetentionMs ?? DEFAULT_IMAGE_CACHE.retentionMs,
  });
}

/** Ekiden's version, from its package.json. */
export function ekidenVersion(): string {
  for (let dir = dirname(fileURLToPath(import.meta.url)); dir !== dirname(dir); dir = dirname(dir)) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'ekiden') return pkg.version ?? '0.0.0';
    } catch {
      // keep looking upwards
    }
  }
  return '0.0.0';
}

/** What a worker found and removed before it served anything. */
export interface ArrivalReport {
  removedVms: string[];
  removedCredentials: string[];
  removedRunners: string[];
}

export interface HostWorker {
  run(): Promise<void>;
  /** Resolves once the worker has reconciled and announced its host (at once without a client). */
  ready: Promise<ArrivalReport>;
  shutdown(): void;
}

export async function createHostWorker(opts: HostWorkerOptions): Promise<HostWorker> {
  const grace = opts.shutdownGraceMs ?? 10_000;
  const hostActivities = createHostActivities({
    hostId: opts.hostId,
    driver: opts.driver,
    credentials: new CredentialStore(join(opts.dataDir, 'credentials')),
    github: opts.github,
    githubRunnerUrl: opts.githubRunnerUrl,
    logsDir: join(opts.dataDir, 'runner-logs'),
    hostKeysDir: join(opts.dataDir, 'host-keys'),
    pollIntervalMs: opts.pollIntervalMs,
  });
  const credentials = new CredentialStore(join(opts.dataDir, 'credentials'));
  const hostKeys = new HostKeyPins(join(opts.dataDir, 'host-keys'));
  const startedAt = Date.now();
  const announcement = (): HostAnnouncement => ({
    id: opts.hostId,
    driver: opts.driver.kind,
    capacity: opts.capacity ?? defaultCapacity(opts.driver.kind, availableParallelism()),
    labels: opts.labels ?? [],
    version: ekidenVersion(),
    hostname: hostname(),
    pid: process.pid,
    startedAt,
  });
  const imageActivities = createImageHostActivities({
    hostId: opts.hostId,
    dataDir: opts.dataDir,
    qemuImagesDir: opts.images?.qemuImagesDir ?? defaultQemuImagesDir(),
    ...(opts.images?.registry ? { registry: opts.images.registry } : {}),
    cache: opts.images?.cache ?? hostImageCache(opts.dataDir, opts.images),
    env: process.env,
    ...(opts.images?.accel ? { accel: opts.images.accel } : {}),
    // The QEMU driver's VMs keep the cache entries they were cloned from.
    ...(opts.driver instanceof QemuDriver ? { inUse: () => (opts.driver as QemuDriver).imageDigestsInUse() } : {}),
  });
  const client = opts.client;
  const fleetHost = client ? createFleetHostActivities({ client, driver: opts.driver, credentials, hostKeys, announcement }) : {};
  const serveHost = opts.serveHost ?? true;
  const serveShared = opts.serveShared ?? true;
  const sharedQueue = opts.sharedTaskQueue ?? SHARED_TASK_QUEUE;
  const workers: Worker[] = [];
  let control: ControlWorker | undefined;
  try {
    if (serveHost) {
      workers.push(
        await Worker.create({
          connection: opts.connection,
          namespace: opts.namespace,
          taskQueue: hostTaskQueue(opts.hostId),
          activities: { ...hostActivities, ...fleetHost, ...imageActivities },
          // Heartbeats are how a cancellation (a retired runner, a deleted pool) reaches a waiting
          // step: send them often enough that it arrives in seconds, not at 0.8 × heartbeat timeout.
          maxHeartbeatThrottleInterval: '2 seconds',
          interceptors: { activityInbound: opts.activityInbound ?? [] },
          shutdownGraceTime: grace,
          identity: `ekiden-host-${opts.hostId}@${process.pid}`,
        }),
      );
    }
    if (serveShared) {
      control = await createControlWorker({
        connection: opts.connection,
        namespace: opts.namespace,
        taskQueue: sharedQueue,
        github: opts.github,
        workflowBundlePath: opts.workflowBundlePath,
        ...(client ? { client } : {}),
        ...(opts.fleetSchedule ? { fleetSchedule: opts.fleetSchedule } : {}),
        ...(opts.versioning ? { versioning: opts.versioning } : {}),
        ...(opts.images?.registry ? { registry: opts.images.registry } : {}),
        confirmDelayMs: opts.confirmDelayMs ?? 2_000,
        shutdownGraceMs: grace,
        activityInbound: opts.activityInbound ?? [],
        identity: `ekiden-shared-${opts.hostId}@${process.pid}`,
      });
      workers.push(control.worker);
    }
  } catch (err) {
    // A Worker that was created but never run still holds the native runtime (the process
    // would never exit): run the ones made so far to an immediate shutdown before giving up.
    await Promise.all(workers.map((w) => w.runUntil(Promise.resolve()).catch(() => {})));
    throw err;
  }
  /** Before serving: remove what a previous life of this host left behind, then say hello. */
  const arrive = async (): Promise<ArrivalReport> => {
    const report: ArrivalReport = { removedVms: [], removedCredentials: [], removedRunners: [] };
    if (!client) return report;
    const confirmDelayMs = opts.confirmDelayMs ?? 2_000;
    if (serveHost) {
      try {
        const r = await reconcileHostNow({ client, driver: opts.driver, credentials, hostKeys, announcement }, confirmDelayMs);
        report.removedVms = r.removedVms;
        report.removedCredentials = r.removedCredentials;
        log('INFO', 'reconciled at start', { host: opts.hostId, removedVms: r.removedVms, removedCredentials: r.removedCredentials });
      } catch (err) {
        log('WARN', 'reconciliation at start failed; the host workflow retries on schedule', { host: opts.hostId, message: errorMessage(err) });
      }
    }
    if (control) report.removedRunners = (await control.arrive()).removedRunners;
    if (serveHost) {
      await client.workflow.signalWithStart<typeof HostWorkflow, [HostAnnouncement]>('HostWorkflow', {
        workflowId: hostWorkflowId(opts.hostId),
        taskQueue: sharedQueue,
        args: [{ id: opts.hostId, timing: resolveHostTiming(opts.hostTiming) }],
        signal: announceHostSignal,
        signalArgs: [announcement()],
      });
    }
    return report;
  };

  let arrived!: (r: ArrivalReport) => void;
  const ready = new Promise<ArrivalReport>((resolve) => (arrived = resolve));
  return {
    ready,
    run: async () => {
      const running = Promise.all(workers.map((w) => w.run()));
      try {
        arrived(await arrive());
      } catch (err) {
        for (const w of workers) if (w.getState() === 'RUNNING') w.shutdown();
        await running.catch(() => {});
        throw err;
      }
      await running;
    },
    shutdown: () => {
      for (const w of workers) if (w.getState() === 'RUNNING') w.shutdown();
    },
  };
}
