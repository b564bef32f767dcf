/**
 * `node dist/workers/main.js --config FILE [--host ID]`: a host worker as its own process (what
 * `ekiden worker` runs on each Mac/Linux host). Drains on SIGTERM/SIGINT.
 */
import { Client, Connection } from '@temporalio/client';
import { NativeConnection } from '@temporalio/worker';
import { fileURLToPath } from 'node:url';
import { loadConfigFile } from '../config/load.js';
import { ConfigError, parseWorkerConfig } from '../config/schema.js';
import { createDriver } from '../drivers/index.js';
import { createOctokit, scopeWebUrl } from '../github/client.js';
import { RunnerRegistry } from '../github/runners.js';
import { createHostWorker } from './host-worker.js';
import { installRuntime } from './logging.js';
import { pauseAfterActivities } from './test-hooks.js';
import { errorMessage } from '../core/failures.js';

export const WORKFLOW_BUNDLE = fileURLToPath(new URL('../workflow-bundle.js', import.meta.url));

export async function runWorkerFromConfig(configPath: string, env: Record<string, string | undefined>, hostId?: string): Promise<number> {
  let config;
  try {
    config = parseWorkerConfig(loadConfigFile(configPath), env, { hostId });
  } catch (err) {
    const reason = err instanceof ConfigError ? err.message : `cannot read ${configPath}: ${errorMessage(err)}`;
    console.error(`ekiden worker: ${reason}`);
    return 2;
  }
  installRuntime();
  const connection = await NativeConnection.connect({ address: config.temporal.address });
  // The fleet side (reconcile at start, host announcement, slots) uses a client connection.
  const clientConnection = await Connection.connect({ address: config.temporal.address });
  const client = new Client({ connection: clientConnection, namespace: config.temporal.namespace });
  const octokit = createOctokit(config.github);
  const worker = await createHostWorker({
    connection,
    client,
    capacity: config.host.capacity,
    labels: config.host.labels,
    namespace: config.temporal.namespace,
    sharedTaskQueue: config.temporal.taskQueue,
    hostId: config.host.id,
    driver: createDriver(config.driver),
    github: new RunnerRegistry(octokit, config.github.scope),
    githubRunnerUrl: scopeWebUrl(config.github.apiUrl, config.github.scope),
    dataDir: config.host.dataDir,
    workflowBundlePath: WORKFLOW_BUNDLE,
    pollIntervalMs: config.host.pollIntervalMs,
    shutdownGraceMs: config.host.shutdownGraceMs,
    activityInbound: config.testing ? [pauseAfterActivities(config.testing.pauseAfter)] : [],
  });
  const stop = () => worker.shutdown();
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
  console.error(JSON.stringify({ level: 'INFO', msg: 'host worker running', host: config.host.id, pid: process.pid }));
  await worker.run();
  await clientConnection.close();
  await connection.close();
  return 0;
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
  process.exitCode = await runWorkerFromConfig(file, process.env, flag('--host'));
}
