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
import type { RunnerSpec, RunnerTiming } from '../../core/runner-spec.js';
import { FakeDriver } from '../../drivers/fake.js';
import type { VmDriver } from '../../drivers/types.js';
import { GitHubEmulator } from '../../emulator/github/server.js';
import { installStandinRunner } from '../../emulator/runner/install.js';
import { createOctokit, scopeWebUrl } from '../../github/client.js';
import { RunnerRegistry } from '../../github/runners.js';
import { createHostWorker, type HostWorker } from '../../workers/host-worker.js';
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

export interface Harness {
  dir: string;
  emulator: GitHubEmulator;
  emulatorUrl: string;
  driver: FakeDriver;
  client: Client;
  connection: Connection;
  nativeConnection: NativeConnection;
  hostId: string;
  spec(overrides?: Partial<RunnerSpec>): RunnerSpec;
  timing(overrides?: Partial<RunnerTiming>): Partial<RunnerTiming>;
  startWorker(opts?: { driver?: VmDriver; activityInbound?: ActivityInboundCallsInterceptorFactory[]; serveHost?: boolean; serveShared?: boolean }): Promise<HostWorker>;
  /** A worker of this harness's kind that the caller runs and stops itself. */
  createWorker(opts: { serveHost: boolean; serveShared: boolean }): Promise<HostWorker>;
  stopWorker(): Promise<void>;
  close(): Promise<void>;
}

export async function createHarness(name: string, opts: { bootDelayMs?: number } = {}): Promise<Harness> {
  installRuntime({ level: 'INFO', sink: (line) => workerLogLines.push(line) });
  const dir = mkdtempSync(join(tmpdir(), `ekiden-${name}-`));
  const emulator = new GitHubEmulator({ tokens: [TOKEN], repos: [REPO], offlineAfterMs: 1_500 });
  const { url } = await emulator.start();
  const imageDir = join(dir, 'image');
  await installStandinRunner({ dir: join(imageDir, 'actions-runner') });
  const brokenDir = join(dir, 'image-never-boots');
  cpSync(imageDir, brokenDir, { recursive: true });
  mkdirSync(join(brokenDir, '.fake', 'faults'), { recursive: true });
  writeFileSync(join(brokenDir, '.fake', 'faults', 'never-boot'), '');
  const driver = new FakeDriver({ root: join(dir, 'vms'), images: { [IMAGE]: imageDir, [NEVER_BOOT_IMAGE]: brokenDir }, bootDelayMs: opts.bootDelayMs });
  const address = inject('temporalAddress');
  const connection = await Connection.connect({ address });
  const nativeConnection = await NativeConnection.connect({ address });
  const client = new Client({ connection });
  const hostId = `${name}-${Math.random().toString(36).slice(2, 8)}`;
  const scope = { kind: 'repo' as const, owner: 'acme', repo: 'app' };
  const registry = new RunnerRegistry(createOctokit({ apiUrl: url, auth: { kind: 'token', token: TOKEN }, scope, writeSpacingMs: 0 }), scope);
  let worker: HostWorker | undefined;
  let running: Promise<void> | undefined;

  const h: Harness = {
    dir,
    emulator,
    emulatorUrl: url,
    driver,
    client,
    connection,
    nativeConnection,
    hostId,
    spec: (o) => ({
      pool: 'test',
      host: hostId,
      image: IMAGE,
      labels: ['self-hosted', 'ekiden-test'],
      runnerGroupId: 1,
      runnerDir: 'actions-runner',
      credential: 'jit',
      ...o,
    }),
    timing: (o) => ({ heartbeatTimeoutMs: 3_000, idleTimeoutMs: 60_000, bootTimeoutMs: 20_000, hostCleanupTimeoutMs: 60_000, deregisterTimeoutMs: 60_000, ...o }),
    async createWorker(o) {
      return createHostWorker({
        connection: nativeConnection,
        namespace: 'default',
        hostId,
        driver,
        github: registry,
        githubRunnerUrl: scopeWebUrl(url, scope),
        dataDir: join(dir, 'host'),
        workflowBundlePath: BUNDLE,
        pollIntervalMs: 200,
        shutdownGraceMs: 2_000,
        sharedTaskQueue: `ekiden-${hostId}`,
        ...o,
      });
    },
    async startWorker(o = {}) {
      worker = await createHostWorker({
        connection: nativeConnection,
        namespace: 'default',
        hostId,
        driver: o.driver ?? driver,
        github: registry,
        githubRunnerUrl: scopeWebUrl(url, scope),
        dataDir: join(dir, 'host'),
        workflowBundlePath: BUNDLE,
        pollIntervalMs: 200,
        shutdownGraceMs: 2_000,
        activityInbound: o.activityInbound,
        serveHost: o.serveHost,
        serveShared: o.serveShared,
        // Shared queue per harness too, so test files never steal each other's tasks.
        sharedTaskQueue: `ekiden-${hostId}`,
      });
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

/** Polls `fn` until `accept` holds (usable in hooks, where expect.poll is not). */
export async function waitUntil<T>(fn: () => Promise<T> | T, accept: (v: T) => boolean, timeoutMs = 60_000, what = 'condition'): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: T | undefined;
  while (Date.now() < deadline) {
    try {
      last = await fn();
      if (accept(last)) return last;
    } catch {
      // not ready yet (e.g. a query before the first workflow task)
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; last value ${JSON.stringify(last)}`);
}
