/**
 * A host worker: serves the host's own task queue (VM and SSH activities for the VMs on this
 * machine) and the shared queue (workflows and GitHub activities). On shutdown it stops
 * polling and gives running activities `shutdownGraceMs` to finish; VMs and guest runners
 * keep running regardless, and the workflows re-attach when a worker returns.
 */
import { NativeConnection, Worker, type ActivityInboundCallsInterceptorFactory } from '@temporalio/worker';
import { join } from 'node:path';
import { createGitHubActivities } from '../activities/github.js';
import { createHostActivities } from '../activities/host.js';
import { hostTaskQueue, SHARED_TASK_QUEUE } from '../core/names.js';
import type { VmDriver } from '../drivers/types.js';
import type { RunnerRegistry } from '../github/runners.js';
import { CredentialStore } from '../host/credential-store.js';

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
  /** Serve workflows and GitHub activities too (default true). */
  serveShared?: boolean;
  /** Serve this host's VM activities (default true; false for a workflow-only worker). */
  serveHost?: boolean;
  /** Queue for workflows and GitHub activities (default `ekiden`). */
  sharedTaskQueue?: string;
  /** Extra activity interceptors (test hooks). */
  activityInbound?: ActivityInboundCallsInterceptorFactory[];
}

export interface HostWorker {
  run(): Promise<void>;
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
    pollIntervalMs: opts.pollIntervalMs,
  });
  const workers: Worker[] = [];
  if (opts.serveHost ?? true) {
    workers.push(
    await Worker.create({
      connection: opts.connection,
      namespace: opts.namespace,
      taskQueue: hostTaskQueue(opts.hostId),
      activities: hostActivities,
      interceptors: { activityInbound: opts.activityInbound ?? [] },
      shutdownGraceTime: grace,
      identity: `ekiden-host-${opts.hostId}@${process.pid}`,
    }),
    );
  }
  if (opts.serveShared ?? true) {
    workers.push(
      await Worker.create({
        connection: opts.connection,
        namespace: opts.namespace,
        taskQueue: opts.sharedTaskQueue ?? SHARED_TASK_QUEUE,
        workflowBundle: { codePath: opts.workflowBundlePath },
        activities: createGitHubActivities({ github: opts.github }),
        interceptors: { activityInbound: opts.activityInbound ?? [] },
        shutdownGraceTime: grace,
        identity: `ekiden-shared-${opts.hostId}@${process.pid}`,
      }),
    );
  }
  return {
    run: async () => {
      await Promise.all(workers.map((w) => w.run()));
    },
    shutdown: () => {
      for (const w of workers) if (w.getState() === 'RUNNING') w.shutdown();
    },
  };
}
