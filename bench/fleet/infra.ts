/**
 * The shared infrastructure of bench:fleet's two phases, set up once: a Temporal dev server,
 * the GitHub emulator with the runner stand-in as the image, one NativeConnection and one
 * Client, and the makers of fake-driver hosts and their host workers. Everything that needs
 * stopping is recorded in Resources as soon as it exists, so a failure half-way still tears
 * down what was started.
 */
import { Client, Connection } from '@temporalio/client';
import { NativeConnection } from '@temporalio/worker';
import type { Server } from 'node:http';
import { join } from 'node:path';
import type { RunnerTiming } from '../../core/runner-spec.js';
import { FakeDriver } from '../../drivers/fake.js';
import { GitHubEmulator, type JobEvent } from '../../emulator/github/server.js';
import { installStandinRunner } from '../../emulator/runner/install.js';
import { createOctokit, scopeWebUrl } from '../../github/client.js';
import { RunnerRegistry } from '../../github/runners.js';
import { defaultCacheDir, locateTemporalCli, startDevServer, type DevServer } from '../../temporal/dev-server.js';
import { createHostWorker, type HostWorker } from '../../workers/host-worker.js';
import { WORKFLOW_BUNDLE } from '../../workers/main.js';
import { within, type Bench } from './context.js';
import { resolveRunnerTiming } from '../../core/defaults.js';
import { errorMessage } from '../../core/failures.js';

export const REPO = 'bench/fleet';
const TOKEN = 'ghp_bench_fleet_token';
export const IMAGE = 'ekiden/runner-standin:bench';
/** As `ekiden up` runs fake hosts: heartbeats within 10 s. */
export const TIMING: RunnerTiming = resolveRunnerTiming({ heartbeatTimeoutMs: 10_000 });
const POLL_MS = 200;

/** The host workers running in this process. */
export class WorkerSet {
  readonly live: Array<{ id: string; worker: HostWorker; running: Promise<void> }> = [];
  /** `id: message` of every worker whose run() failed. */
  readonly errors: string[] = [];

  start(id: string, worker: HostWorker): void {
    const running = worker.run().catch((err: unknown) => {
      this.errors.push(`${id}: ${errorMessage(err)}`);
    });
    this.live.push({ id, worker, running });
  }

  /** Shuts down the workers `which` selects and waits until they have stopped. */
  async stop(which: (id: string) => boolean): Promise<void> {
    const stopping = this.live.filter((w) => which(w.id));
    for (const w of stopping) w.worker.shutdown();
    await within(60_000, 'worker shutdown', () => Promise.all(stopping.map((w) => w.running)));
    for (const w of stopping) this.live.splice(this.live.indexOf(w), 1);
  }
}

/** What the teardown stops, deletes or counts. */
export interface Resources {
  /** Stopped in reverse order, last. */
  closers: Array<{ what: string; run: () => Promise<unknown> }>;
  drivers: FakeDriver[];
  workers: WorkerSet;
  emulator?: GitHubEmulator;
  client?: Client;
  webhookServer?: Server;
  poolsStarted: boolean;
}

export function newResources(): Resources {
  return { closers: [], drivers: [], workers: new WorkerSet(), poolsStarted: false };
}

export interface Infra {
  server: DevServer;
  emu: GitHubEmulator;
  client: Client;
  /** A FakeDriver for host `id` under the temp dir, its image already pulled. */
  newDriver(id: string): Promise<FakeDriver>;
  /** Host `id`'s worker; `fleet` makes it announce itself (capacity, labels) to a HostWorkflow. */
  hostWorker(id: string, driver: FakeDriver, o: { serveShared: boolean; fleet: boolean }): Promise<HostWorker>;
}

export async function startInfrastructure(bench: Bench, res: Resources, onJob: (e: JobEvent) => void): Promise<Infra> {
  const { dir } = bench;
  const cli = await locateTemporalCli({ explicitPath: process.env.TEMPORAL_CLI_PATH, searchPath: process.env.PATH, cacheDir: defaultCacheDir(process.env), allowGoInstall: true });
  if (!cli) throw new Error('no Temporal CLI; set TEMPORAL_CLI_PATH');
  const server = await startDevServer({ cliPath: cli, ui: false, logFile: join(dir, 'temporal.log') });
  res.closers.push({ what: 'dev server', run: () => server.stop() });
  const emu = new GitHubEmulator({ tokens: [TOKEN], repos: [REPO] });
  res.emulator = emu;
  const { url } = await emu.start();
  res.closers.push({ what: 'emulator', run: () => emu.stop() });
  emu.on('job', onJob);
  const imageDir = join(dir, 'image');
  await installStandinRunner({ dir: join(imageDir, 'actions-runner') });
  const scope = { kind: 'repo' as const, owner: 'bench', repo: 'fleet' };
  const registry = new RunnerRegistry(createOctokit({ apiUrl: url, auth: { kind: 'token', token: TOKEN }, scope, writeSpacingMs: 0 }), scope);
  const native = await NativeConnection.connect({ address: server.address });
  res.closers.push({ what: 'native connection', run: () => native.close() });
  const connection = await Connection.connect({ address: server.address });
  res.closers.push({ what: 'client connection', run: () => connection.close() });
  const c = new Client({ connection });
  res.client = c;
  bench.log.say(`dev server pid ${server.pid} at ${server.address}; emulator ${url}; temp dir ${dir}`);

  const newDriver = async (id: string) => {
    const d = new FakeDriver({ root: join(dir, 'hosts', id, 'vms'), images: { [IMAGE]: imageDir } });
    await d.pullImage({ image: IMAGE }); // warm image cache: no lifecycle pays a first pull
    res.drivers.push(d);
    return d;
  };
  const hostWorker = (id: string, driver: FakeDriver, o: { serveShared: boolean; fleet: boolean }) =>
    createHostWorker({
      connection: native,
      namespace: 'default',
      hostId: id,
      driver,
      github: registry,
      githubRunnerUrl: scopeWebUrl(url, scope),
      dataDir: join(dir, 'hosts', id, 'data'),
      workflowBundlePath: WORKFLOW_BUNDLE,
      pollIntervalMs: POLL_MS,
      shutdownGraceMs: 2_000,
      serveShared: o.serveShared,
      serveHost: true,
      ...(o.fleet ? { client: c, capacity: bench.opts.slots, labels: ['fleet'] } : {}),
    });
  return { server, emu, client: c, newDriver, hostWorker };
}

/** Waits until `n` runners named `prefix…` are online and idle at the emulator. */
export async function waitWarm(bench: Bench, emu: GitHubEmulator, prefix: string, n: number, timeoutMs = 90_000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  const warm = () => emu.runners().filter((r) => r.name.startsWith(prefix) && r.status === 'online' && !r.busy).length;
  while (warm() < n) {
    if (performance.now() > deadline) throw new Error(`only ${warm()}/${n} warm runner(s) ${prefix}* after ${timeoutMs / 1000} s`);
    await bench.pause(100);
  }
}
