/**
 * `node dist/workers/main.js --config FILE [--host ID]`: a host worker as its own process (what
 * `ekiden worker` runs on each Mac/Linux host). Drains on SIGTERM/SIGINT.
 *
 * Problems are found before anything is contacted: the config (exit 2), a driver this platform
 * cannot run (exit 2), the host's data dir (exit 2 when it cannot be made or written; exit 1
 * when another process — a second worker for the same host — holds it, see
 * host/data-dir-lock.ts). An unreachable Temporal is one line, exit 1. Whatever fails after a
 * connection was made closes it, so the process exits.
 */
import { Client } from '@temporalio/client';
import { fileURLToPath } from 'node:url';
import { loadConfigFile } from '../config/load.js';
import { registryEndpoint } from '../config/registry-endpoint.js';
import type { RegistryEndpoint } from '../registry/client.js';
import { ConfigError, parseControlPlaneConfig, parseWorkerConfig, type ControlPlaneConfig } from '../config/schema.js';
import type { TemporalSettings } from '../config/fleet.js';
import { createControlWorker } from './control-worker.js';
import { hostname } from 'node:os';
import { setTimeout as delay } from 'node:timers/promises';
import { createDriver } from '../drivers/index.js';
import { createOctokit, scopeWebUrl } from '../github/client.js';
import { RunnerRegistry } from '../github/runners.js';
import { createHostWorker, ekidenVersion, hostImageCache } from './host-worker.js';
import type { DeploymentVersion } from '../temporal/deployment.js';
import type { ControlConfig } from '../config/fleet.js';
import { installRuntime } from './logging.js';
import { pauseAfterActivities } from './test-hooks.js';
import { errorMessage } from '../core/failures.js';
import { claimDataDir, DataDirError, DataDirInUseError, type DataDirLock } from '../host/data-dir-lock.js';
import { connectClient, connectNative, credentialsFor, loadCredentials, type LoadedCredentials, type TemporalCredentials } from '../temporal/connect.js';
import { ensureNamespace } from '../temporal/namespace-setup.js';

export const WORKFLOW_BUNDLE = fileURLToPath(new URL('../workflow-bundle.js', import.meta.url));

/** A problem with the host's setup found before the worker starts: `ekiden worker: …`, exit 2. */
function platformProblem(driver: { kind: string; tartBinary?: string }): string | undefined {
  if (driver.kind === 'tart' && process.platform !== 'darwin' && !driver.tartBinary) {
    return `driver: tart runs on macOS only (this host is ${process.platform}); use the qemu or fake driver here`;
  }
  return undefined;
}

/** The Worker Deployment version a control-plane worker of this config polls as (undefined: unversioned). */
function versionOf(control: ControlConfig): DeploymentVersion | undefined {
  return control.versioning ? { deployment: control.versioning.deployment, buildId: control.versioning.buildId ?? ekidenVersion() } : undefined;
}

/** Runs `run` with SIGTERM / SIGINT calling `stop` (a drain), and the handlers removed after. */
async function untilSignal(stop: () => void, run: () => Promise<void>): Promise<void> {
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
  try {
    await run();
  } finally {
    process.off('SIGTERM', stop);
    process.off('SIGINT', stop);
  }
}

/** The worker's two connections to Temporal (closed by `closers`) and Ekiden's search attributes on the namespace, created where missing. */
async function connectFleet(
  temporal: TemporalSettings,
  credentials: TemporalCredentials,
  loaded: LoadedCredentials,
  env: Record<string, string | undefined>,
  closers: Array<() => Promise<void>>,
) {
  const address = temporal.address;
  const connection = await connectNative(address, credentials, env, loaded);
  closers.push(() => connection.close());
  // The fleet side (reconcile at start, host announcement, slots) uses a client connection.
  const clientConnection = await connectClient(address, credentials, env, { loaded });
  closers.push(() => clientConnection.close());
  // Ekiden's search attributes on the namespace, created where missing (else one line naming them and the fix).
  const setup = await ensureNamespace(clientConnection.operatorService, { address, namespace: temporal.namespace }, { create: true });
  if (setup.created.length) console.error(JSON.stringify({ level: 'INFO', msg: 'created search attributes', namespace: setup.namespace, created: setup.created }));
  return { connection, client: new Client({ connection: clientConnection, namespace: temporal.namespace }) };
}

/**
 * A host-only worker's runners need a control plane: when no worker polls the shared queue
 * for workflows a while after start, say so once (its runners would wait without a word).
 */
async function warnWithoutControlPlane(client: Client, taskQueue: string, afterMs = 15_000): Promise<void> {
  await delay(afterMs);
  try {
    const r = await client.workflowService.describeTaskQueue({
      namespace: client.options.namespace,
      taskQueue: { name: taskQueue },
      taskQueueType: 1, // TASK_QUEUE_TYPE_WORKFLOW
    });
    if ((r.pollers ?? []).length === 0) {
      console.error(JSON.stringify({ level: 'WARN', msg: `no control plane serves task queue ${taskQueue}: this host's runners wait until one does; start \`ekiden control --config FILE\` somewhere, or set control: true on one host`, taskQueue }));
    }
  } catch {
    // Only a hint: a failed look says nothing.
  }
}

/**
 * `ekiden control --config FILE`: the control plane as its own process — workflows, GitHub
 * and fleet activities, and the fleet schedule (workers/control-worker.ts). It holds no VM and
 * no data dir; several may run. Drains on SIGTERM/SIGINT.
 */
export async function runControlFromConfig(configPath: string, env: Record<string, string | undefined>): Promise<number> {
  let config: ControlPlaneConfig;
  let credentials: TemporalCredentials;
  let loaded: LoadedCredentials;
  let registry: RegistryEndpoint | undefined;
  try {
    config = parseControlPlaneConfig(loadConfigFile(configPath), env, { configFile: configPath });
    registry = config.registry ? registryEndpoint(config.registry, env) : undefined;
    credentials = credentialsFor(config.temporal, env);
    loaded = loadCredentials(credentials, env);
  } catch (err) {
    const reason = err instanceof ConfigError ? err.message : `cannot read ${configPath}: ${errorMessage(err)}`;
    console.error(`ekiden control: ${reason}`);
    return 2;
  }
  const closers: Array<() => Promise<void>> = [];
  try {
    installRuntime();
    const { connection, client } = await connectFleet(config.temporal, credentials, loaded, env, closers);
    const version = versionOf(config.control);
    const control = await createControlWorker({
      connection,
      client,
      namespace: config.temporal.namespace,
      taskQueue: config.temporal.taskQueue,
      github: new RunnerRegistry(createOctokit(config.github), config.github.scope),
      workflowBundlePath: config.testing?.workflowBundle ?? WORKFLOW_BUNDLE,
      fleetSchedule: { intervalMs: config.control.intervalMs },
      ...(version ? { versioning: version } : {}),
      ...(registry ? { registry } : {}),
      activityInbound: config.testing ? [pauseAfterActivities(config.testing.pauseAfter)] : [],
      identity: `ekiden-control@${hostname()}:${process.pid}`,
    });
    await untilSignal(
      () => {
        if (control.worker.getState() === 'RUNNING') control.worker.shutdown();
      },
      async () => {
        const running = control.worker.run();
        await control.arrive();
        console.error(
          JSON.stringify({
            level: 'INFO',
            msg: 'control plane running',
            taskQueue: config.temporal.taskQueue,
            pid: process.pid,
            roundEveryMs: config.control.intervalMs,
            ...(version ? { deployment: version.deployment, buildId: version.buildId } : { versioning: false }),
          }),
        );
        await running;
      },
    );
    return 0;
  } finally {
    for (const close of closers.reverse()) await close().catch(() => {});
  }
}

export async function runWorkerFromConfig(configPath: string, env: Record<string, string | undefined>, hostId?: string): Promise<number> {
  let config;
  try {
    config = parseWorkerConfig(loadConfigFile(configPath), env, { hostId, configFile: configPath });
  } catch (err) {
    const reason = err instanceof ConfigError ? err.message : `cannot read ${configPath}: ${errorMessage(err)}`;
    console.error(`ekiden worker: ${reason}`);
    return 2;
  }
  const problem = platformProblem(config.driver);
  if (problem) {
    console.error(`ekiden worker: ${problem}`);
    return 2;
  }
  // The registry password and Temporal's credentials are read before anything starts: a missing or unusable one is a config error.
  let registry: RegistryEndpoint | undefined;
  let credentials: TemporalCredentials;
  let loaded: LoadedCredentials;
  try {
    registry = config.registry ? registryEndpoint(config.registry, env) : undefined;
    credentials = credentialsFor(config.temporal, env);
    loaded = loadCredentials(credentials, env);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    console.error(`ekiden worker: ${err.message}`);
    return 2;
  }
  // One worker per host data dir: two workers for one host would fight over its VMs and credentials.
  let lock: DataDirLock;
  try {
    lock = claimDataDir(config.host.dataDir, { command: `ekiden worker --host ${config.host.id}` });
  } catch (err) {
    if (err instanceof DataDirInUseError) {
      console.error(`ekiden: ${err.message}`);
      return 1;
    }
    if (err instanceof DataDirError) {
      console.error(`ekiden worker: ${err.message}`);
      return 2;
    }
    throw err;
  }
  const closers: Array<() => Promise<void>> = [];
  try {
    installRuntime();
    const { connection, client } = await connectFleet(config.temporal, credentials, loaded, env, closers);
    const octokit = createOctokit(config.github);
    // One image cache per host, shared by the driver (runners' images) and the image activities (prefetch).
    const imageCache = hostImageCache(config.host.dataDir, { cacheBudgetBytes: config.host.imageCache.budgetBytes, cacheRetentionMs: config.host.imageCache.retentionMs });
    const version = versionOf(config.control);
    const worker = await createHostWorker({
      connection,
      client,
      capacity: config.host.capacity,
      labels: config.host.labels,
      namespace: config.temporal.namespace,
      sharedTaskQueue: config.temporal.taskQueue,
      hostId: config.host.id,
      driver: createDriver(config.driver, { qemuOci: { cache: imageCache, ...(registry ? { registry } : {}), where: `host ${config.host.id}` } }),
      github: new RunnerRegistry(octokit, config.github.scope),
      githubRunnerUrl: scopeWebUrl(config.github.apiUrl, config.github.scope),
      dataDir: config.host.dataDir,
      workflowBundlePath: config.testing?.workflowBundle ?? WORKFLOW_BUNDLE,
      pollIntervalMs: config.host.pollIntervalMs,
      shutdownGraceMs: config.host.shutdownGraceMs,
      activityInbound: config.testing ? [pauseAfterActivities(config.testing.pauseAfter)] : [],
      serveShared: config.host.control,
      ...(config.host.control ? { fleetSchedule: { intervalMs: config.control.intervalMs } } : {}),
      ...(config.host.control && version ? { versioning: version } : {}),
      images: {
        cache: imageCache,
        ...(registry ? { registry } : {}),
        ...(config.driver.kind === 'qemu' ? { qemuImagesDir: config.driver.imagesDir } : {}),
      },
    });
    await untilSignal(
      () => worker.shutdown(),
      async () => {
        console.error(JSON.stringify({ level: 'INFO', msg: 'host worker running', host: config.host.id, pid: process.pid, control: config.host.control }));
        const running = worker.run();
        if (!config.host.control) void warnWithoutControlPlane(client, config.temporal.taskQueue);
        await running;
      },
    );
    return 0;
  } finally {
    for (const close of closers.reverse()) await close().catch(() => {});
    lock.release();
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const flag = (name: string) => {
    const i = process.argv.indexOf(name);
    return i >= 0 ? process.argv[i + 1] : undefined;
  };
  const file = flag('--config');
  if (!file) {
    console.error('usage: node dist/workers/main.js --config FILE [--host ID]');
    process.exit(2);
  }
  try {
    process.exitCode = await runWorkerFromConfig(file, process.env, flag('--host'));
  } catch (err) {
    console.error(`ekiden worker: ${errorMessage(err)}`);
    process.exitCode = 1;
  }
}
