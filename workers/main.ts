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
import { ConfigError, parseWorkerConfig } from '../config/schema.js';
import { createDriver } from '../drivers/index.js';
import { createOctokit, scopeWebUrl } from '../github/client.js';
import { RunnerRegistry } from '../github/runners.js';
import { createHostWorker, hostImageCache } from './host-worker.js';
import { installRuntime } from './logging.js';
import { pauseAfterActivities } from './test-hooks.js';
import { errorMessage } from '../core/failures.js';
import { claimDataDir, DataDirError, DataDirInUseError, type DataDirLock } from '../host/data-dir-lock.js';
import { connectClient, connectNative, credentialsFor, loadCredentials, type TemporalCredentials } from '../temporal/connect.js';
import { ensureNamespace } from '../temporal/namespace-setup.js';

export const WORKFLOW_BUNDLE = fileURLToPath(new URL('../workflow-bundle.js', import.meta.url));

/** A problem with the host's setup found before the worker starts: `ekiden worker: …`, exit 2. */
function platformProblem(driver: { kind: string; tartBinary?: string }): string | undefined {
  if (driver.kind === 'tart' && process.platform !== 'darwin' && !driver.tartBinary) {
    return `driver: tart runs on macOS only (this host is ${process.platform}); use the qemu or fake driver here`;
  }
  return undefined;
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
  try {
    registry = config.registry ? registryEndpoint(config.registry, env) : undefined;
    credentials = credentialsFor(config.temporal, env);
    loadCredentials(credentials, env);
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
    const address = config.temporal.address;
    const connection = await connectNative(address, credentials, env);
    closers.push(() => connection.close());
    // The fleet side (reconcile at start, host announcement, slots) uses a client connection.
    const clientConnection = await connectClient(address, credentials, env);
    closers.push(() => clientConnection.close());
    // Ekiden's search attributes on the namespace, created where missing (else one line naming them and the fix).
    const setup = await ensureNamespace(clientConnection.operatorService, { address, namespace: config.temporal.namespace }, { create: true });
    if (setup.created.length) console.error(JSON.stringify({ level: 'INFO', msg: 'created search attributes', namespace: setup.namespace, created: setup.created }));
    const client = new Client({ connection: clientConnection, namespace: config.temporal.namespace });
    const octokit = createOctokit(config.github);
    // One image cache per host, shared by the driver (runners' images) and the image activities (prefetch).
    const imageCache = hostImageCache(config.host.dataDir, { cacheBudgetBytes: config.host.imageCache.budgetBytes, cacheRetentionMs: config.host.imageCache.retentionMs });
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
      workflowBundlePath: WORKFLOW_BUNDLE,
      pollIntervalMs: config.host.pollIntervalMs,
      shutdownGraceMs: config.host.shutdownGraceMs,
      activityInbound: config.testing ? [pauseAfterActivities(config.testing.pauseAfter)] : [],
      images: {
        cache: imageCache,
        ...(registry ? { registry } : {}),
        ...(config.driver.kind === 'qemu' ? { qemuImagesDir: config.driver.imagesDir } : {}),
      },
    });
    const stop = () => worker.shutdown();
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
    try {
      console.error(JSON.stringify({ level: 'INFO', msg: 'host worker running', host: config.host.id, pid: process.pid }));
      await worker.run();
    } finally {
      process.off('SIGTERM', stop);
      process.off('SIGINT', stop);
    }
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
