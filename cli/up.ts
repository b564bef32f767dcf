/**
 * `ekiden up`: the embedded one-machine default in one process — a Temporal dev server with
 * a persistent SQLite file (or the cluster named by TEMPORAL_ADDRESS / a client profile), the
 * GitHub emulator when no GitHub credentials are configured, a host worker and a pool.
 * Ctrl-C cancels the pool (every runner cleans up), then stops everything it started.
 */
import { Client, Connection, WorkflowIdConflictPolicy, WorkflowNotFoundError } from '@temporalio/client';
import { loadClientConnectConfig } from '@temporalio/envconfig';
import { NativeConnection } from '@temporalio/worker';
import { mkdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { createWriteStream } from 'node:fs';
import { SHARED_TASK_QUEUE, poolWorkflowId } from '../core/names.js';
import { SA_HOST, SA_POOL, SEARCH_ATTRIBUTE_KEYS } from '../core/search-attributes.js';
import type { RunnerTiming } from '../core/runner-spec.js';
import { poolWorkflowInput, type PoolSpec } from '../core/defaults.js';
import { createDriver } from '../drivers/index.js';
import { buildQemuImage, DEFAULT_QEMU_IMAGE, defaultQemuImagesDir, loadQemuImage } from '../drivers/qemu-image.js';
import type { VmDriver } from '../drivers/types.js';
import { GitHubEmulator } from '../emulator/github/server.js';
import { installStandinRunner } from '../emulator/runner/install.js';
import { createOctokit, scopeWebUrl, type GitHubSettings } from '../github/client.js';
import { RunnerRegistry } from '../github/runners.js';
import { defaultCacheDir, locateTemporalCli, startDevServer, type DevServer } from '../temporal/dev-server.js';
import { createHostWorker } from '../workers/host-worker.js';
import { installRuntime } from '../workers/logging.js';
import { WORKFLOW_BUNDLE } from '../workers/main.js';
import { parseScope } from '../config/schema.js';
import { UsageError } from './main.js';
import type { PoolWorkflow } from '../workflows/pool.js';
import { errorMessage } from '../core/failures.js';

export interface UpOptions {
  driver: 'fake' | 'qemu' | 'tart';
  jobs?: number;
  dataDir: string;
  poolSize?: number;
  labels: string[];
  hostId: string;
  idleTimeoutSeconds?: number;
}

const DEMO_REPO = 'ekiden/demo';
const POOL = 'demo';
const FAKE_IMAGE = 'ekiden/runner-standin:latest';

type Env = Record<string, string | undefined>;

function say(line: string): void {
  process.stdout.write(`${line}\n`);
}

function githubFromEnv(env: Env): GitHubSettings | undefined {
  if (!env.GITHUB_TOKEN) return undefined;
  if (!env.EKIDEN_GITHUB_SCOPE) throw new UsageError('GITHUB_TOKEN is set but EKIDEN_GITHUB_SCOPE is not; set it to repo:OWNER/REPO or org:ORG');
  return {
    apiUrl: env.GITHUB_API_URL ?? 'https://api.github.com',
    auth: { kind: 'token', token: env.GITHUB_TOKEN },
    scope: parseScope(env.EKIDEN_GITHUB_SCOPE, 'EKIDEN_GITHUB_SCOPE'),
  };
}

async function prepareDriver(kind: UpOptions['driver'], dataDir: string, env: Env): Promise<{ driver: VmDriver; image: string }> {
  if (kind === 'fake') {
    // Each "VM" is a local process with a real SSH server and the runner stand-in.
    const imageDir = join(dataDir, 'image-src', 'runner-standin');
    await installStandinRunner({ dir: join(imageDir, 'actions-runner') });
    return { driver: createDriver({ kind: 'fake', root: join(dataDir, 'vms'), images: { [FAKE_IMAGE]: imageDir } }), image: FAKE_IMAGE };
  }
  if (kind === 'qemu') {
    const imagesDir = env.EKIDEN_QEMU_IMAGES_DIR ?? defaultQemuImagesDir(env as NodeJS.ProcessEnv);
    if (!(await loadQemuImage(imagesDir, DEFAULT_QEMU_IMAGE))) {
      say(`image: building the Debian guest image into ${imagesDir} (first use only, a few minutes; progress below) …`);
      const started = Date.now();
      await buildQemuImage({ imagesDir });
      say(`image: built in ${((Date.now() - started) / 1000).toFixed(0)} s`);
    }
    return { driver: createDriver({ kind: 'qemu', root: join(dataDir, 'vms'), imagesDir, maxRunning: 2 }), image: DEFAULT_QEMU_IMAGE };
  }
  throw new UsageError('--driver tart: `ekiden up` has no macOS demo image yet; run `ekiden worker --config` with a tart driver, or use --driver fake');
}

export async function up(opts: UpOptions, env: Env): Promise<number> {
  const dataDir = resolve(opts.dataDir);
  await mkdir(join(dataDir, 'logs'), { recursive: true });
  const workerLog = createWriteStream(join(dataDir, 'logs', 'worker.log'), { flags: 'a' });
  installRuntime({ sink: (line) => workerLog.write(line + '\n') });

  const cleanups: Array<() => Promise<void>> = [];
  const runCleanups = async () => {
    for (const fn of cleanups.reverse()) {
      try {
        await fn();
      } catch (err) {
        say(`  cleanup step failed: ${errorMessage(err)}`);
      }
    }
    cleanups.length = 0;
  };
  let interrupted = false;
  let onInterrupt: () => void = () => {};
  const sigint = () => {
    if (interrupted) {
      say('second interrupt: exiting now; run `ekiden up` again to let workflows finish their cleanup');
      process.exit(130);
    }
    interrupted = true;
    say('\nstopping: cancelling runners (each cleans up its VM and registration) …');
    onInterrupt();
  };
  process.on('SIGINT', sigint);
  process.on('SIGTERM', sigint);

  try {
    // Temporal: an existing cluster when configured, else the embedded dev server.
    let address: string;
    let namespace = env.TEMPORAL_NAMESPACE ?? 'default';
    let connectOptions: Parameters<typeof Connection.connect>[0] = {};
    let uiUrl: string | undefined;
    if (env.TEMPORAL_ADDRESS || env.TEMPORAL_PROFILE || env.TEMPORAL_CONFIG_FILE) {
      const cfg = loadClientConnectConfig({ profile: env.TEMPORAL_PROFILE, overrideEnvVars: env as Record<string, string> });
      connectOptions = cfg.connectionOptions as typeof connectOptions;
      address = cfg.connectionOptions.address ?? env.TEMPORAL_ADDRESS ?? '127.0.0.1:7233';
      namespace = cfg.namespace ?? namespace;
      say(`temporal: using ${address} (namespace ${namespace})`);
    } else {
      const cli = await locateTemporalCli({
        explicitPath: env.TEMPORAL_CLI_PATH,
        searchPath: env.PATH,
        cacheDir: defaultCacheDir(env),
        allowGoInstall: true,
        log: say,
      });
      if (cli) {
        const server: DevServer = await startDevServer({
          cliPath: cli,
          dbFile: join(dataDir, 'temporal.db'),
          logFile: join(dataDir, 'logs', 'temporal.log'),
          namespace,
        });
        cleanups.push(() => server.stop());
        address = server.address;
        uiUrl = server.uiUrl;
      } else {
        // Last resort: the SDK downloads a dev server (needs the internet).
        say('temporal: no Temporal CLI found; asking the Temporal SDK to download a dev server …');
        const { TestWorkflowEnvironment } = await import('@temporalio/testing');
        const env = await TestWorkflowEnvironment.createLocal({
          server: { dbFilename: join(dataDir, 'temporal.db'), searchAttributes: SEARCH_ATTRIBUTE_KEYS, namespace },
        }).catch((err: unknown) => {
          throw new Error('no Temporal CLI found and the SDK could not download one: install it (`brew install temporal`, or Go ≥ 1.25 for a build) or set TEMPORAL_ADDRESS', { cause: err });
        });
        cleanups.push(() => env.teardown());
        address = env.address;
      }
      say(`temporal: dev server at ${address}, data in ${join(dataDir, 'temporal.db')}`);
    }

    // GitHub: real when credentials are configured, else the local emulator (demo only).
    let github = githubFromEnv(env);
    let emulator: GitHubEmulator | undefined;
    if (!github) {
      const token = `ekiden-demo-${Math.random().toString(36).slice(2)}${Date.now().toString(36)}`;
      // QEMU guests reach the host's loopback through the user-network gateway 10.0.2.2.
      const runnerBaseUrl = opts.driver === 'qemu' ? (own: string) => own.replace('127.0.0.1', '10.0.2.2') : undefined;
      emulator = new GitHubEmulator({ tokens: [token], repos: [DEMO_REPO], runnerBaseUrl });
      const { url } = await emulator.start();
      cleanups.push(() => emulator!.stop());
      const [owner, repo] = DEMO_REPO.split('/') as [string, string];
      github = { apiUrl: url, auth: { kind: 'token', token }, scope: { kind: 'repo', owner, repo }, writeSpacingMs: 0 };
      say(`github: no GITHUB_TOKEN set, using the local GitHub emulator at ${url} (repo ${DEMO_REPO})`);
    }

    const { driver, image } = await prepareDriver(opts.driver, dataDir, env);

    const nativeConnection = await NativeConnection.connect({ ...connectOptions, address } as Parameters<typeof NativeConnection.connect>[0]);
    cleanups.push(() => nativeConnection.close());
    const octokit = createOctokit(github);
    const connection = await Connection.connect({ ...connectOptions, address });
    cleanups.push(() => connection.close());
    const client = new Client({ connection, namespace });
    const size = opts.poolSize ?? Math.min(opts.jobs ?? 2, 2);
    const worker = await createHostWorker({
      client,
      capacity: size,
      labels: opts.labels,
      connection: nativeConnection,
      namespace,
      hostId: opts.hostId,
      driver,
      github: new RunnerRegistry(octokit, github.scope),
      githubRunnerUrl: scopeWebUrl(github.apiUrl, github.scope),
      dataDir: join(dataDir, 'host'),
      workflowBundlePath: WORKFLOW_BUNDLE,
      pollIntervalMs: opts.driver === 'qemu' ? 2_000 : 500,
    });
    const workerRun = worker.run();
    cleanups.push(async () => {
      worker.shutdown();
      await workerRun;
    });
    await Promise.race([worker.ready, workerRun]);

    const config: PoolSpec = {
      name: POOL,
      hosts: [opts.hostId],
      image,
      labels: opts.labels,
      runnerGroupId: 1,
      runnerDir: 'actions-runner',
      credential: 'jit',
      size,
      minIdle: 0,
      max: size,
      backoff: { initialMs: 2_000, maxMs: 60_000 },
    };
    const timing: Partial<RunnerTiming> = {
      heartbeatTimeoutMs: 10_000,
      ...(opts.idleTimeoutSeconds ? { idleTimeoutMs: opts.idleTimeoutSeconds * 1000 } : {}),
    };
    const poolId = poolWorkflowId(POOL);
    // A pool left running by a killed `up` belongs to a GitHub session that is gone: end it.
    try {
      const old = client.workflow.getHandle(poolId);
      if ((await old.describe()).status.name === 'RUNNING') {
        say(`pool: a previous ${poolId} is still running; cancelling it first`);
        await old.cancel();
        await old.result().catch(() => {});
      }
    } catch (err) {
      if (!(err instanceof WorkflowNotFoundError)) throw err;
    }
    const pool = await client.workflow.start<typeof PoolWorkflow>('PoolWorkflow', {
      workflowId: poolId,
      taskQueue: SHARED_TASK_QUEUE,
      args: [poolWorkflowInput({ ...config, timing })],
      workflowIdConflictPolicy: WorkflowIdConflictPolicy.FAIL,
      typedSearchAttributes: [
        { key: SA_POOL, value: POOL },
        { key: SA_HOST, value: opts.hostId },
      ],
    });
    say(`pool: ${poolId} keeps ${size} runner(s) warm on host ${opts.hostId} (labels ${opts.labels.join(',')})`);
    if (uiUrl) {
      say(`web ui: ${uiUrl}/namespaces/${namespace}/workflows`);
      say(`        runners: ${uiUrl}/namespaces/${namespace}/workflows?query=${encodeURIComponent(`EkidenPool="${POOL}"`)}`);
    }

    const stopPool = async () => {
      await pool.cancel().catch(() => {});
      await pool.result().catch(() => {});
    };

    if (opts.jobs === undefined) {
      say('running; press Ctrl-C to stop');
      await new Promise<void>((resolveWait) => {
        onInterrupt = resolveWait;
        if (interrupted) resolveWait();
      });
      await stopPool();
      say('stopped: every runner cleaned up');
      return 0;
    }

    if (!emulator) throw new UsageError('--jobs needs the GitHub emulator; unset GITHUB_TOKEN');
    const queued: Array<{ id: number }> = [];
    for (let i = 1; i <= opts.jobs; i++) {
      queued.push(
        emulator.queueJob({
          repo: DEMO_REPO,
          name: `demo-${i}`,
          labels: opts.labels,
          steps: [{ name: 'hello', run: `echo "hello from job ${i} on $(hostname)"` }],
        }),
      );
    }
    say(`jobs: queued ${queued.length} demo job(s); waiting for runners to take them`);
    const started = Date.now();
    const done = await new Promise<boolean>((resolveWait) => {
      onInterrupt = () => resolveWait(false);
      if (interrupted) resolveWait(false);
      const timer = setInterval(() => {
        const jobs = emulator!.jobs().filter((j) => queued.some((q) => q.id === j.id));
        if (jobs.every((j) => j.status === 'completed')) {
          clearInterval(timer);
          resolveWait(true);
        }
      }, 250);
    });
    await stopPool();
    const jobs = emulator.jobs().filter((j) => queued.some((q) => q.id === j.id));
    const ok = jobs.filter((j) => j.conclusion === 'success').length;
    say(`summary: ${ok}/${jobs.length} job(s) succeeded in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    for (const j of jobs) say(`  job ${j.id} ${j.name ?? ''}: ${j.status}/${j.conclusion ?? '-'} on ${j.runner_name ?? '-'}`);
    const leftVms = await driver.list();
    const leftRunners = emulator.runners();
    say(`leftovers: ${leftVms.length} VM(s), ${leftRunners.length} runner registration(s)`);
    return done && ok === jobs.length && leftVms.length === 0 && leftRunners.length === 0 ? 0 : 1;
  } finally {
    await runCleanups();
    process.off('SIGINT', sigint);
    process.off('SIGTERM', sigint);
    workerLog.end();
  }
}
