/**
 * An Ekiden host for tests: the GitHub emulator, the fake driver with a runner stand-in
 * image, and a host worker in this process, against the run's real Temporal server.
 */
import { Client, Connection } from '@temporalio/client';
import { NativeConnection, type ActivityInboundCallsInterceptorFactory } from '@temporalio/worker';
import { cpSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { inject } from 'vitest';
import { resolveRunnerTiming } from '../../core/defaults.js';
import type { RunnerSpec, RunnerTiming } from '../../core/runner-spec.js';
import { FakeDriver } from '../../drivers/fake.js';
import type { DriverSettings } from '../../drivers/index.js';
import { QemuDriver } from '../../drivers/qemu.js';
import { DEFAULT_QEMU_IMAGE, defaultQemuImagesDir, loadQemuImage } from '../../drivers/qemu-image.js';
import type { VmDriver } from '../../drivers/types.js';
import { GitHubEmulator } from '../../emulator/github/server.js';
import { installStandinRunner } from '../../emulator/runner/install.js';
import { createOctokit, scopeWebUrl } from '../../github/client.js';
import { RunnerRegistry } from '../../github/runners.js';
import { createHostWorker, type HostImageOptions, type HostWorker, type HostWorkerOptions } from '../../workers/host-worker.js';
import type { HostTiming, PoolConfig } from '../../workflows/api.js';
import { installRuntime } from '../../workers/logging.js';

export const REPO = 'acme/app';
export const IMAGE = 'ekiden/runner-standin:test';
/** The same image, but its guests never answer SSH (the fake driver's never-boot fault). */
export const NEVER_BOOT_IMAGE = 'ekiden/never-boots:test';
export const TOKEN = 'ghp_testtoken_ekiden_0123456789';
export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const BUNDLE = join(ROOT, 'dist', 'workflow-bundle.js');

/** Log lines of the in-process worker, kept for the secret scan. */
export const workerLogLines: string[] = [];

export function temporalSkipReason(): string | undefined {
  const missing = inject('temporalMissing');
  if (missing) return missing;
  if (!existsSync(BUNDLE)) return 'dist/workflow-bundle.js missing: run `npm run build` first';
  return undefined;
}

/** A worker that takes part in the fleet: reconciles at start, announces its host, serves slots. */
export interface FleetWorkerOptions {
  /** Another host id than the harness's own (several hosts in one test). */
  hostId?: string;
  capacity?: number;
  labels?: string[];
  hostTiming?: Partial<HostTiming>;
}

/** What a harness worker serves and with what (both builders take the same options). */
export interface WorkerOptions {
  driver?: VmDriver;
  activityInbound?: ActivityInboundCallsInterceptorFactory[];
  serveHost?: boolean;
  serveShared?: boolean;
  fleet?: FleetWorkerOptions;
  /** Image builds and transfers (registry, cache) on the harness's host. */
  images?: HostImageOptions;
}

export interface Harness {
  dir: string;
  emulator: GitHubEmulator;
  emulatorUrl: string;
  driver: VmDriver;
  /** Image the harness's runners use. */
  image: string;
  /** Driver settings for a worker process (`ekiden worker --config`). */
  driverSettings: DriverSettings;
  client: Client;
  connection: Connection;
  nativeConnection: NativeConnection;
  hostId: string;
  spec(overrides?: Partial<RunnerSpec>): RunnerSpec;
  /** Test timing (short timeouts) with every other value resolved: a RunnerWorkflow input's `timing`. */
  timing(overrides?: Partial<RunnerTiming>): RunnerTiming;
  /** A pool `name` on this harness's host and image, labelled `lbl-<name>`, with test timing and a short backoff. */
  poolConfig(name: string, overrides?: Partial<PoolConfig>): PoolConfig;
  startWorker(opts?: WorkerOptions): Promise<HostWorker>;
  /** A worker of this harness's kind that the caller runs and stops itself. */
  createWorker(opts: WorkerOptions): Promise<HostWorker>;
  /** The shared task queue of this harness (workflows and GitHub activities). */
  taskQueue: string;
  stopWorker(): Promise<void>;
  close(): Promise<void>;
}

/** Why real-VM tests cannot run here, or undefined when they can. */
export async function qemuSkipReason(): Promise<string | undefined> {
  const temporal = temporalSkipReason();
  if (temporal) return temporal;
  const onPath = (bin: string) => (process.env.PATH ?? '').split(':').some((d) => existsSync(join(d, bin)));
  if (!onPath('qemu-system-x86_64')) return 'qemu-system-x86_64 not installed (apt-get install qemu-system-x86 qemu-utils)';
  if (!(await loadQemuImage(qemuImagesDir(), DEFAULT_QEMU_IMAGE))) return `no guest image in ${qemuImagesDir()}: run images/ensure-image.sh`;
  return undefined;
}

function qemuImagesDir(): string {
  return process.env.EKIDEN_QEMU_IMAGES_DIR ?? defaultQemuImagesDir();
}

export async function createHarness(name: string, opts: { bootDelayMs?: number; driver?: 'fake' | 'qemu' } = {}): Promise<Harness> {
  installRuntime({ level: 'INFO', sink: (line) => workerLogLines.push(line) });
  const dir = mkdtempSync(join(tmpdir(), `ekiden-${name}-`));
  const qemu = opts.driver === 'qemu';
  const emulator = new GitHubEmulator({
    tokens: [TOKEN],
    repos: [REPO],
    offlineAfterMs: qemu ? 5_000 : 1_500,
    // QEMU guests reach the host's loopback through the user-network gateway.
    runnerBaseUrl: qemu ? (own) => own.replace('127.0.0.1', '10.0.2.2') : undefined,
  });
  const { url } = await emulator.start();
  const imageDir = join(dir, 'image');
  await installStandinRunner({ dir: join(imageDir, 'actions-runner') });
  const brokenDir = join(dir, 'image-never-boots');
  cpSync(imageDir, brokenDir, { recursive: true });
  mkdirSync(join(brokenDir, '.fake', 'faults'), { recursive: true });
  writeFileSync(join(brokenDir, '.fake', 'faults', 'never-boot'), '');
  const driver: VmDriver = qemu
    ? new QemuDriver({ root: join(dir, 'vms'), imagesDir: qemuImagesDir(), maxRunning: 2, stopTimeoutMs: 10_000 })
    : new FakeDriver({ root: join(dir, 'vms'), images: { [IMAGE]: imageDir, [NEVER_BOOT_IMAGE]: brokenDir }, bootDelayMs: opts.bootDelayMs });
  const address = inject('temporalAddress');
  const connection = await Connection.connect({ address });
  const nativeConnection = await NativeConnection.connect({ address });
  const client = new Client({ connection });
  const hostId = `${name}-${Math.random().toString(36).slice(2, 8)}`;
  const scope = { kind: 'repo' as const, owner: 'acme', repo: 'app' };
  const registry = new RunnerRegistry(createOctokit({ apiUrl: url, auth: { kind: 'token', token: TOKEN }, scope, writeSpacingMs: 0 }), scope);
  let worker: HostWorker | undefined;
  let running: Promise<void> | undefined;
  const fleetOptions = (f: FleetWorkerOptions | undefined): Partial<HostWorkerOptions> =>
    f
      ? {
          client,
          hostId: f.hostId ?? hostId,
          ...(f.hostId ? { dataDir: join(dir, `host-${f.hostId}`) } : {}),
          capacity: f.capacity,
          labels: f.labels,
          hostTiming: { pingIntervalMs: 500, downAfterMs: 3_000, confirmDelayMs: 200, ...f.hostTiming },
          confirmDelayMs: 200,
        }
      : {};

  const h: Harness = {
    dir,
    emulator,
    emulatorUrl: url,
    driver,
    image: qemu ? DEFAULT_QEMU_IMAGE : IMAGE,
    driverSettings: qemu
      ? { kind: 'qemu', root: join(dir, 'vms'), imagesDir: qemuImagesDir(), maxRunning: 2 }
      : { kind: 'fake', root: join(dir, 'vms'), images: { [IMAGE]: imageDir, [NEVER_BOOT_IMAGE]: brokenDir } },
    client,
    connection,
    nativeConnection,
    hostId,
    taskQueue: `ekiden-${hostId}`,
    spec: (o) => ({
      pool: 'test',
      host: hostId,
      image: qemu ? DEFAULT_QEMU_IMAGE : IMAGE,
      labels: ['self-hosted', 'ekiden-test'],
      runnerGroupId: 1,
      runnerDir: 'actions-runner',
      credential: 'jit',
      ...o,
    }),
    timing: (o) =>
      resolveRunnerTiming({ heartbeatTimeoutMs: 3_000, idleTimeoutMs: 60_000, bootTimeoutMs: 20_000, hostCleanupTimeoutMs: 60_000, deregisterTimeoutMs: 60_000, ...o }),
    poolConfig: (name, o) => ({
      name,
      hosts: [hostId],
      image: qemu ? DEFAULT_QEMU_IMAGE : IMAGE,
      labels: ['self-hosted', `lbl-${name}`],
      runnerGroupId: 1,
      runnerDir: 'actions-runner',
      credential: 'jit',
      size: 1,
      minIdle: 0,
      max: 4,
      timing: h.timing(),
      backoff: { initialMs: 1_000, maxMs: 4_000 },
      ...o,
    }),
    async createWorker(o) {
      return createHostWorker({
        connection: nativeConnection,
        namespace: 'default',
        hostId,
        driver: o.driver ?? driver,
        github: registry,
        githubRunnerUrl: scopeWebUrl(url, scope),
        dataDir: join(dir, 'host'),
        workflowBundlePath: BUNDLE,
        pollIntervalMs: qemu ? 1_000 : 200,
        shutdownGraceMs: 2_000,
        activityInbound: o.activityInbound,
        serveHost: o.serveHost,
        serveShared: o.serveShared,
        // Shared queue per harness too, so test files never steal each other's tasks.
        sharedTaskQueue: `ekiden-${hostId}`,
        ...(o.images ? { images: o.images } : {}),
        ...fleetOptions(o.fleet),
      });
    },
    async startWorker(o = {}) {
      worker = await h.createWorker(o);
      running = worker.run();
      return worker;
    },
    async stopWorker() {
      worker?.shutdown();
      await running;
      worker = undefined;
      running = undefined;
    },
    async close() {
      await h.stopWorker();
      for (const vm of await driver.list()) {
        await driver.stop({ name: vm.name, timeoutMs: 1_000 });
        await driver.delete({ name: vm.name });
      }
      await emulator.stop();
      await connection.close();
      await nativeConnection.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return h;
}

export { waitUntil } from './wait.js';
