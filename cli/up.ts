/**
 * `ekiden up`: the embedded one-machine default in one process — a Temporal dev server with
 * a persistent SQLite file (or the cluster named by TEMPORAL_ADDRESS / a client profile), the
 * GitHub emulator when no GitHub credentials are configured, a host worker and a pool.
 * Ctrl-C cancels the pool (every runner cleans up), then stops everything it started.
 *
 * Every way out exits: a usage problem (flags, environment, data dir) is found before anything
 * starts (exit 2); the data dir has one owner (host/data-dir-lock.ts; a second `up` exits 1);
 * an unreachable Temporal is one line (exit 1); a pool that ends on its own ends `up` with its
 * reason (exit 1, its runners cancelled); Ctrl-C / SIGTERM clean up and exit (with --jobs,
 * 130 / 143); the dev server dies with this process even on SIGKILL (temporal/dev-server.ts).
 */
import { Client, WorkflowFailedError, WorkflowIdConflictPolicy, WorkflowNotFoundError, type WorkflowHandle } from '@temporalio/client';
import { CancelledFailure, TerminatedFailure, TimeoutFailure } from '@temporalio/common';
import { basename, join } from 'node:path';
import { createWriteStream } from 'node:fs';
import { SHARED_TASK_QUEUE, poolWorkflowId } from '../core/names.js';
import { SA_HOST, SA_POOL, SEARCH_ATTRIBUTE_KEYS } from '../core/search-attributes.js';
import { ensureNamespace } from '../temporal/namespace-setup.js';
import { connectClient, connectNative, loadCredentials, profileFromEnv } from '../temporal/connect.js';
import type { RunnerTiming } from '../core/runner-spec.js';
import { poolWorkflowInput, type PoolSpec } from '../core/defaults.js';
import { createDriver } from '../drivers/index.js';
import { buildQemuImage, DEFAULT_QEMU_IMAGE, defaultQemuImagesDir, loadQemuImage } from '../drivers/qemu-image.js';
import type { VmDriver } from '../drivers/types.js';
import { GitHubEmulator } from '../emulator/github/server.js';
import { installStandinRunner } from '../emulator/runner/install.js';
import { createOctokit, scopeWebUrl, type GitHubSettings } from '../github/client.js';
import { RunnerRegistry } from '../github/runners.js';
import { cannotReachTemporal, defaultCacheDir, locateTemporalCli, startDevServer, type DevServer } from '../temporal/dev-server.js';
import { createHostWorker } from '../workers/host-worker.js';
import { DEFAULT_CONTROL } from '../config/fleet.js';
import { installRuntime } from '../workers/logging.js';
import { WORKFLOW_BUNDLE } from '../workers/main.js';
import { parseScope } from '../config/schema.js';
import { UsageError } from './errors.js';
import { BOUNDS, intProblem, labelProblem, slugProblem } from '../config/bounds.js';
import { writeEndpoint } from '../host/endpoint.js';
import { claimDataDir, DataDirError, ensureDataSubdir, type DataDirLock } from '../host/data-dir-lock.js';
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

/** Real GitHub when GITHUB_TOKEN is set; a UsageError when the rest of the settings is missing or wrong. */
function githubFromEnv(env: Env): GitHubSettings | undefined {
  if (!env.GITHUB_TOKEN) return undefined;
  if (!env.EKIDEN_GITHUB_SCOPE) throw new UsageError('GITHUB_TOKEN is set but EKIDEN_GITHUB_SCOPE is not; set it to repo:OWNER/REPO or org:ORG');
  let scope: GitHubSettings['scope'];
  try {
    scope = parseScope(env.EKIDEN_GITHUB_SCOPE, 'EKIDEN_GITHUB_SCOPE');
  } catch (err) {
    throw new UsageError(errorMessage(err));
  }
  return { apiUrl: env.GITHUB_API_URL ?? 'https://api.github.com', auth: { kind: 'token', token: env.GITHUB_TOKEN }, scope };
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
  throw new UsageError(TART_UNSUPPORTED);
}

const TART_UNSUPPORTED = '--driver tart: `ekiden up` has no macOS demo image yet; run `ekiden worker --config` with a tart driver, or use --driver fake';

/**
 * What up() checks of its options before it starts anything. cli/main.ts parses the flags by
 * the same rules (config/bounds.ts); this repeats them for any other caller, and adds what
 * only up knows (an empty --data-dir).
 */
export function checkUpOptions(opts: UpOptions): void {
  if (opts.dataDir.trim() === '') throw new UsageError('--data-dir: empty; give a directory');
  const slug = slugProblem('--host-id', opts.hostId);
  if (slug) throw new UsageError(slug);
  const numbers = [
    ['--jobs', opts.jobs, BOUNDS.demoJobs],
    ['--pool-size', opts.poolSize, BOUNDS.demoPoolSize],
    ['--idle-timeout', opts.idleTimeoutSeconds, BOUNDS.idleTimeoutSeconds],
  ] as const;
  for (const [flag, value, rule] of numbers) {
    const problem = value === undefined ? undefined : intProblem(flag, value, rule);
    if (problem) throw new UsageError(problem);
  }
  if (opts.labels.length === 0) throw new UsageError('--labels: give at least one label');
  for (const label of opts.labels) {
    const problem = labelProblem('--labels', label);
    if (problem) throw new UsageError(problem);
  }
  if (opts.driver === 'tart') throw new UsageError(TART_UNSUPPORTED);
}

/** Ctrl-C or SIGTERM before `up` finished starting. */
class Interrupted extends Error {
  override readonly name = 'Interrupted';
}

const EXIT_ON_SIGNAL: Partial<Record<NodeJS.Signals, number>> = { SIGINT: 130, SIGTERM: 143 };

/** Why the pool workflow ended, from its result. */
function poolEnd(err: unknown): string {
  if (err instanceof WorkflowFailedError) {
    const cause = err.cause;
    if (cause instanceof TerminatedFailure) return `was terminated${cause.message ? `: ${cause.message}` : ''}`;
    if (cause instanceof CancelledFailure) return 'was cancelled';
    if (cause instanceof TimeoutFailure) return 'timed out';
    return `failed: ${errorMessage(cause ?? err)}`;
  }
  return `could not be watched: ${errorMessage(err)}`;
}

function delay(ms: number): { done: Promise<void>; cancel(): void } {
  let timer: NodeJS.Timeout | undefined;
  const done = new Promise<void>((r) => (timer = setTimeout(r, ms)));
  return { done, cancel: () => clearTimeout(timer) };
}

/** Rejects after `ms` with `onTimeout()`; the timer never keeps the process alive. */
async function within<T>(p: Promise<T>, ms: number, onTimeout: () => Error): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(onTimeout()), ms);
    timer.unref();
  });
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * The runners of the demo pool still running after the pool itself ended (they outlive a pool
 * run): cancel them so each deletes its VM and registration while the worker still serves them.
 */
async function cancelOrphanRunners(client: Client, poolId: string, timeoutMs: number): Promise<number> {
  const handles: WorkflowHandle[] = [];
  for await (const wf of client.workflow.list({ query: `EkidenPool = "${POOL}" AND ExecutionStatus = "Running"` })) {
    if (wf.workflowId !== poolId) handles.push(client.workflow.getHandle(wf.workflowId, wf.runId));
  }
  await Promise.all(handles.map((h) => h.cancel().catch(() => {})));
  const wait = delay(timeoutMs);
  await Promise.race([Promise.all(handles.map((h) => h.result().catch(() => {}))), wait.done]);
  wait.cancel();
  return handles.length;
}

/**
 * A last resort for the process running `ekiden up` as its command: if something still holds
 * the event loop a few seconds after up() returned (a native handle nobody closed), exit anyway
 * with the code up() returned. Never armed for other callers of up().
 */
function armExitBackstop(): void {
  const entry = basename(process.argv[1] ?? '');
  if (entry !== 'ekiden' && entry !== 'ekiden.js') return;
  setTimeout(() => {
    process.stderr.write('ekiden: something kept the process alive after cleanup; exiting\n');
    process.exit();
  }, 5_000).unref();
}

export async function up(opts: UpOptions, env: Env): Promise<number> {
  try {
    return await upChecked(opts, env);
  } finally {
    armExitBackstop();
  }
}

async function upChecked(opts: UpOptions, env: Env): Promise<number> {
  // Everything a user can get wrong is found before anything starts.
  checkUpOptions(opts);
  const realGitHub = githubFromEnv(env);
  if (opts.jobs !== undefined && realGitHub) throw new UsageError('--jobs needs the GitHub emulator; unset GITHUB_TOKEN (or drop --jobs)');
  // An existing cluster when the environment names one (TEMPORAL_ADDRESS, a client-config profile, TEMPORAL_TLS_* …).
  let clusterConfig: ReturnType<typeof profileFromEnv>;
  try {
    clusterConfig = profileFromEnv(env);
    if (clusterConfig) loadCredentials(clusterConfig.credentials, env);
  } catch (err) {
    throw new UsageError(errorMessage(err).split('\n')[0]!);
  }

  // One owner per data dir: a second `up` (or a worker) on it stops here.
  let lock: DataDirLock;
  let workerLogPath: string;
  try {
    lock = claimDataDir(opts.dataDir, { command: 'ekiden up' });
    workerLogPath = join(ensureDataSubdir(lock.dir, 'logs'), 'worker.log');
  } catch (err) {
    if (err instanceof DataDirError) throw new UsageError(err.message);
    throw err;
  }
  const dataDir = lock.dir;
  const workerLog = createWriteStream(workerLogPath, { flags: 'a' });
  workerLog.on('error', () => {});
  // Installed when the first native object is made, so that a failure before leaves no runtime alive.
  const ensureRuntime = () => installRuntime({ sink: (line) => workerLog.write(line + '\n') });

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
  let interrupted: NodeJS.Signals | undefined;
  let interruptNow!: () => void;
  const interruption = new Promise<void>((r) => (interruptNow = r));
  let poolRunning = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (interrupted) {
      say('second interrupt: exiting now; run `ekiden up` again to let workflows finish their cleanup');
      process.exit(EXIT_ON_SIGNAL[signal] ?? 130);
    }
    interrupted = signal;
    say(poolRunning ? '\nstopping: cancelling runners (each cleans up its VM and registration) …' : '\nstopping: interrupted while starting; stopping what started …');
    interruptNow();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  /** Between start-up steps: give up at once when interrupted. */
  const checkInterrupted = () => {
    if (interrupted) throw new Interrupted(`interrupted (${interrupted}) while starting`);
  };

  try {
    // Temporal: an existing cluster when configured, else the embedded dev server.
    let address: string;
    let namespace = env.TEMPORAL_NAMESPACE || 'default';
    const credentials = clusterConfig?.credentials ?? {};
    let uiUrl: string | undefined;
    if (clusterConfig) {
      address = clusterConfig.address ?? env.TEMPORAL_ADDRESS ?? '127.0.0.1:7233';
      namespace = clusterConfig.namespace ?? namespace;
      say(`temporal: using ${address} (namespace ${namespace})`);
    } else {
      const cli = await locateTemporalCli({
        explicitPath: env.TEMPORAL_CLI_PATH,
        searchPath: env.PATH,
        cacheDir: defaultCacheDir(env),
        allowGoInstall: true,
        log: say,
      });
      checkInterrupted();
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
        ensureRuntime();
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
    checkInterrupted();

    // The worker's connection first: it says at once, and precisely, when the server cannot be reached.
    ensureRuntime();
    const nativeConnection = await within(
      connectNative(address, credentials, env),
      30_000,
      () => cannotReachTemporal(address, new Error('no answer within 30 s')),
    );
    cleanups.push(() => nativeConnection.close());
    // Where the operator verbs find this server and its Web UI (`ekiden runners --data-dir …`).
    const removeEndpoint = writeEndpoint(dataDir, { address, namespace, ...(uiUrl ? { uiUrl } : {}) });
    cleanups.push(async () => removeEndpoint());
    const connection = await connectClient(address, credentials, env);
    cleanups.push(() => connection.close());
    if (clusterConfig) {
      // A server this command did not start: Ekiden's search attributes may not be there yet.
      const setup = await ensureNamespace(connection.operatorService, { address, namespace }, { create: true });
      if (setup.created.length) say(`temporal: created search attributes ${setup.created.join(', ')} on namespace ${namespace}`);
    }
    const client = new Client({ connection, namespace });
    checkInterrupted();

    // GitHub: real when credentials are configured, else the local emulator (demo only).
    let github = realGitHub;
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
    checkInterrupted();

    const octokit = createOctokit(github);
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
      // The worker stops after the pool and its runners ended: what still runs then is host
      // bookkeeping that resumes at the next start, not worth holding the exit for 10 s.
      shutdownGraceMs: 3_000,
      // The embedded server is this fleet's alone: keep its fleet schedule there (on a cluster
      // of its own, the fleet's `ekiden control` keeps it; a demo should not leave one behind).
      ...(clusterConfig ? {} : { fleetSchedule: { intervalMs: DEFAULT_CONTROL.intervalMs } }),
    });
    const workerRun = worker.run();
    workerRun.catch(() => {});
    cleanups.push(async () => {
      worker.shutdown();
      await workerRun;
    });
    await Promise.race([worker.ready, workerRun, interruption]);
    checkInterrupted();

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
    checkInterrupted();
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
    poolRunning = true;
    let stopping = false;
    // The pool must run as long as `up` does; if it ends on its own (it failed, someone
    // terminated or cancelled it), so does `up`.
    const poolEnded: Promise<string> = pool.result().then(
      () => 'completed',
      (err: unknown) => poolEnd(err),
    );
    let poolFailure: string | undefined;
    void poolEnded.then((reason) => {
      if (!stopping) poolFailure = `pool ${poolId} ${reason}`;
    });
    cleanups.push(async () => {
      // Stop watching before the connection closes under the watch.
      stopping = true;
    });
    say(`pool: ${poolId} keeps ${size} runner(s) warm on host ${opts.hostId} (labels ${opts.labels.join(',')})`);
    if (uiUrl) {
      say(`web ui: ${uiUrl}/namespaces/${namespace}/workflows`);
      say(`        runners: ${uiUrl}/namespaces/${namespace}/workflows?query=${encodeURIComponent(`EkidenPool="${POOL}"`)}`);
    }

    /** Ends the pool: cancelled (its runners clean up) when running; else its orphaned runners are cancelled. */
    const stopPool = async () => {
      const failed = poolFailure;
      stopping = true;
      if (failed) {
        say(`stopping: ${failed}; cancelling its runners (each cleans up its VM and registration) …`);
        const n = await cancelOrphanRunners(client, poolId, 60_000).catch((err: unknown) => {
          say(`  could not cancel the runners: ${errorMessage(err)}`);
          return 0;
        });
        if (n > 0) say(`  cancelled ${n} runner(s)`);
        return;
      }
      await pool.cancel().catch(() => {});
      await pool.result().catch(() => {});
    };
    const poolDied = poolEnded.then(() => undefined);

    if (opts.jobs === undefined) {
      say('running; press Ctrl-C to stop');
      await Promise.race([interruption, poolDied]);
      if (poolFailure && !interrupted) {
        await stopPool();
        throw new Error(poolFailure);
      }
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
    const queuedIds = new Set(queued.map((q) => q.id));
    const ours = () => emulator!.jobs().filter((j) => queuedIds.has(j.id));
    let timer: NodeJS.Timeout | undefined;
    const allDone = new Promise<void>((resolveWait) => {
      timer = setInterval(() => {
        if (ours().every((j) => j.status === 'completed')) resolveWait();
      }, 250);
    });
    try {
      await Promise.race([allDone, interruption, poolDied]);
    } finally {
      clearInterval(timer);
    }
    const done = !interrupted && !poolFailure;
    await stopPool();
    const jobs = ours();
    const ok = jobs.filter((j) => j.conclusion === 'success').length;
    say(`summary: ${ok}/${jobs.length} job(s) succeeded in ${((Date.now() - started) / 1000).toFixed(1)} s${interrupted ? ` (interrupted by ${interrupted})` : ''}`);
    for (const j of jobs) say(`  job ${j.id} ${j.name ?? ''}: ${j.status}/${j.conclusion ?? '-'} on ${j.runner_name ?? '-'}`);
    const leftVms = await driver.list();
    const leftRunners = emulator.runners();
    say(`leftovers: ${leftVms.length} VM(s), ${leftRunners.length} runner registration(s)`);
    if (interrupted) return EXIT_ON_SIGNAL[interrupted] ?? 130;
    if (poolFailure) throw new Error(poolFailure);
    return done && ok === jobs.length && leftVms.length === 0 && leftRunners.length === 0 ? 0 : 1;
  } catch (err) {
    if (err instanceof Interrupted) {
      say(`stopped: ${err.message}`);
      return EXIT_ON_SIGNAL[interrupted ?? 'SIGINT'] ?? 130;
    }
    throw err;
  } finally {
    await runCleanups();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await new Promise<void>((r) => workerLog.end(r));
    lock.release();
  }
}
