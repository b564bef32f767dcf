/**
 * bench:images' rollout phases, on a real Temporal dev server, a real registry (docker-registry
 * 2.8, TLS, htpasswd; test/support/registry.ts) and `hosts` (default 10) host workers in this
 * process, each with its own data dir and content-addressed image cache, the fake driver for VMs.
 *
 * (a) Promote to every host ready. Two builds of a QEMU image (synthetic, `diskMiB` MiB of
 * random disk each, so nothing deduplicates) are pushed with pushQemuImage and recorded in an
 * ImageCatalogWorkflow (imageBuilt, as a green ImageBuildWorkflow records them). A pool of size 0
 * following `catalog:NAME` on every host makes the catalog's rollout include them all (the
 * imageFollowers activity reads the pools' hosts). Measured: from sending promoteImage until
 * imageStatus.rollout lists every host in hostsReady (each host pulled the build by digest from
 * the registry into its cache: prefetchImage, 3 hosts at a time), polled every 50 ms; then
 * each host's cache is checked to hold the digest. Done for the first build (cold caches) and
 * again for the second (the first cached). Baseline, same run, once before (a) and once after
 * (the machine's load drifts): the same pulls of the first build done directly with
 * pullQemuImage into fresh directories, 3 at a time, no Temporal; ratio = Ekiden (first build)
 * / the mean of the two baseline runs.
 *
 * (b) Rolling a pool onto a new digest. A second catalog with two builds of the runner
 * stand-in (fake-driver images, whose digests the driver checks), a pool of `poolRunners`
 * (default 6) warm idle runners on two of the hosts. Measured: from promoteImage of the second
 * build until every one of the pool's runners (poolStatus, cleaning ones not counted) is idle
 * on the new digest — the catalog's rollout (its hosts cannot prefetch fake-driver builds from
 * the registry: manifest unknown, not retried, so that part is short), the imagePromoted signal,
 * and the pool recycling its idle runners 2 at a time (retire, clean up, start, register, idle).
 * Per-runner figure: rollPoolMs / poolRunners.
 *
 * The registry password lives in this process's memory only (RegistryEndpoint); nothing here
 * logs it or puts it on a command line. Everything started is stopped in a finally.
 */
import { Client, Connection, type WorkflowHandle } from '@temporalio/client';
import { NativeConnection } from '@temporalio/worker';
import { cpSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { resolvePoolTuning, resolveRunnerTiming } from '../../core/defaults.js';
import { errorMessage } from '../../core/failures.js';
import { hostWorkflowId, imageCatalogWorkflowId, poolWorkflowId, SHARED_TASK_QUEUE } from '../../core/names.js';
import { SA_POOL } from '../../core/search-attributes.js';
import { FakeDriver } from '../../drivers/fake.js';
import { GitHubEmulator } from '../../emulator/github/server.js';
import { installStandinRunner } from '../../emulator/runner/install.js';
import { createOctokit, scopeWebUrl } from '../../github/client.js';
import { RunnerRegistry } from '../../github/runners.js';
import type { ImageCache } from '../../host/image-cache.js';
import { RegistryClient, type RegistryEndpoint } from '../../registry/client.js';
import { pullQemuImage, pushQemuImage } from '../../registry/qemu-artifact.js';
import { defaultCacheDir, locateTemporalCli, startDevServer, type DevServer } from '../../temporal/dev-server.js';
import { registryMissing, startRegistry, makeImageDir, type TestRegistry } from '../../test/support/registry.js';
import {
  hostStatusQuery,
  imageBuiltSignal,
  imageStatusQuery,
  poolStatusQuery,
  promoteImageUpdate,
  type ImageBuildRecord,
  type ImageCatalogStatus,
  type PoolConfig,
  type PoolStatus,
} from '../../workflows/api.js';
import type { ImageCatalogWorkflow } from '../../workflows/image-catalog.js';
import type { PoolWorkflow } from '../../workflows/pool.js';
import { createHostWorker, hostImageCache, type HostWorker } from '../../workers/host-worker.js';
import { installRuntime } from '../../workers/logging.js';
import { cancelRunners } from '../fleet/temporal.js';

export interface RolloutOptions {
  /** Hosts serving a pool of the image (default 10). */
  hosts?: number;
  /** Runners of the pool rolled in (b) (default 6). */
  poolRunners?: number;
  /** Disk of each synthetic QEMU build, MiB (default 64). */
  diskMiB?: number;
  /** VMs at once per host (default 4); (b)'s pool runs on the first two hosts. */
  capacity?: number;
  /** dist/workflow-bundle.js by default (`npm run build` makes it). */
  workflowBundlePath?: string;
  /** Per wait (default 180 s). */
  timeoutMs?: number;
}

export interface RolloutFigures {
  hosts: number;
  diskMiB: number;
  /** Bytes of one build (disk, kernel, initrd, manifest). */
  buildBytes: number;
  /** (a) promote → every host in rollout.hostsReady, first build (cold caches). */
  promoteToHostsReadyMs: number;
  /** (a) promote → the first host ready. */
  promoteToFirstHostReadyMs: number;
  /** (a) promote → rollout state done (the pool told too). */
  promoteToRolloutDoneMs: number;
  /** (a) again for the second build (the first one cached on every host). */
  secondPromoteToHostsReadyMs: number;
  /** The same `hosts` pulls of the first build with pullQemuImage, 3 at a time, no Temporal: mean of the two runs. */
  baselinePullsMs: number;
  /** The baseline run before (a) and the one after. */
  baselineBeforeMs: number;
  baselineAfterMs: number;
  /** promoteToHostsReadyMs / baselinePullsMs. */
  ratioHostsReady: number;
  /** (b) */
  poolRunners: number;
  /** Promote → every runner of the pool idle on the new digest. */
  rollPoolMs: number;
  /** Promote → the catalog's rollout done (the pool told). */
  rollPoolNotifiedMs: number;
  /** Promote → the first runner idle on the new digest. */
  rollPoolFirstRunnerMs: number;
  /** rollPoolMs / poolRunners. */
  msPerRunner: number;
  /** (rollPoolMs − rollPoolNotifiedMs) / poolRunners: the pool's own recycling, per runner. */
  recycleMsPerRunner: number;
  /** Pool of 6 warm from start to 6 idle runners (informative). */
  poolWarmMs: number;
}

const REPO = 'bench/images';
const TOKEN = 'ghp_bench_images_token';
const PREFETCH_CONCURRENCY = 3;
const MiB = 1024 * 1024;

/** dist/workflow-bundle.js of the checkout this module was compiled in (dist/ or dist/all/). */
function defaultBundle(): string {
  for (let dir = dirname(fileURLToPath(import.meta.url)); dir !== dirname(dir); dir = dirname(dir)) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'dist'))) return join(dir, 'dist', 'workflow-bundle.js');
  }
  return join(process.cwd(), 'dist', 'workflow-bundle.js');
}

async function waitFor<T>(what: string, timeoutMs: number, everyMs: number, read: () => Promise<T>, ok: (v: T) => boolean): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  let last: T | undefined;
  let lastErr: unknown;
  for (;;) {
    try {
      last = await read();
      if (ok(last)) return last;
    } catch (err) {
      lastErr = err;
    }
    if (performance.now() > deadline) {
      throw new Error(`${what}: not after ${timeoutMs / 1000} s (last: ${last === undefined ? errorMessage(lastErr) : JSON.stringify(last).slice(0, 600)})`);
    }
    await sleep(everyMs);
  }
}

/** Waits for `p` at most `ms` (teardown steps: a stuck one must not keep the rest from running). */
async function bounded(what: string, ms: number, p: Promise<unknown>): Promise<void> {
  let t: NodeJS.Timeout | undefined;
  const late = Symbol('late');
  try {
    const v = await Promise.race([p, new Promise<symbol>((resolve) => (t = setTimeout(() => resolve(late), ms)))]);
    if (v === late) console.log(`  (teardown: ${what} did not finish in ${ms / 1000} s)`);
  } finally {
    clearTimeout(t);
  }
}

/** `n` tasks, at most `k` at once. */
async function limited(n: number, k: number, task: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(k, n) }, async () => {
    for (let i = next++; i < n; i = next++) await task(i);
  }));
}

const r1 = (x: number) => Math.round(x * 10) / 10;
const r2 = (x: number) => Math.round(x * 100) / 100;

export async function measureRollout(opts: RolloutOptions = {}): Promise<RolloutFigures> {
  const hosts = opts.hosts ?? 10;
  const poolRunners = opts.poolRunners ?? 6;
  const diskMiB = opts.diskMiB ?? 64;
  const capacity = opts.capacity ?? 4;
  const timeoutMs = opts.timeoutMs ?? 180_000;
  const bundle = opts.workflowBundlePath ?? defaultBundle();
  if (!(Number.isInteger(hosts) && hosts >= 2)) throw new Error('hosts: a whole number ≥ 2');
  if (poolRunners > 2 * capacity - 2) throw new Error(`poolRunners: at most ${2 * capacity - 2} on two hosts of capacity ${capacity} (2 spare slots for the recycling)`);
  const missing = registryMissing();
  if (missing) throw new Error(`the rollout bench needs ${missing}`);
  if (!existsSync(bundle)) throw new Error(`${bundle} missing: run \`npm run build\` first`);
  const cli = await locateTemporalCli({ explicitPath: process.env.TEMPORAL_CLI_PATH, searchPath: process.env.PATH, cacheDir: defaultCacheDir(process.env), allowGoInstall: false });
  if (!cli) throw new Error('no Temporal CLI; set TEMPORAL_CLI_PATH');

  // Worker and SDK log lines stay in memory; the last warnings are shown if the run fails.
  const logTail: string[] = [];
  installRuntime({ level: 'WARN', sink: (line) => logTail.push(line) > 40 && logTail.shift() });

  const dir = mkdtempSync(join(tmpdir(), 'ekiden-bench-rollout-'));
  const tag = Math.random().toString(36).slice(2, 7);
  const closers: Array<{ what: string; run: () => Promise<unknown> }> = [];
  const workers: Array<{ id: string; worker: HostWorker; running: Promise<void> }> = [];
  const drivers: FakeDriver[] = [];
  const workerErrors: string[] = [];
  let client: Client | undefined;
  const pools: Array<WorkflowHandle<typeof PoolWorkflow>> = [];
  const catalogs: Array<WorkflowHandle<typeof ImageCatalogWorkflow>> = [];
  try {
    const server: DevServer = await startDevServer({ cliPath: cli, ui: false, logFile: join(dir, 'temporal.log') });
    closers.push({ what: 'dev server', run: () => server.stop() });
    const registry: TestRegistry = await startRegistry();
    closers.push({ what: 'registry', run: () => registry.stop() });
    const emu = new GitHubEmulator({ tokens: [TOKEN], repos: [REPO] });
    const { url } = await emu.start();
    closers.push({ what: 'emulator', run: () => emu.stop() });
    const native = await NativeConnection.connect({ address: server.address });
    closers.push({ what: 'native connection', run: () => native.close() });
    const connection = await Connection.connect({ address: server.address });
    closers.push({ what: 'client connection', run: () => connection.close() });
    const c = new Client({ connection });
    client = c;
    console.log(`rollout: dev server ${server.address}, registry ${registry.url}, ${hosts} hosts, temp dir ${dir}`);

    // Two QEMU builds in the registry.
    const endpoint: RegistryEndpoint = { url: registry.url, caFile: registry.caFile, username: registry.username, password: registry.password, credentialSource: 'bench (in memory)' };
    const repository = `ekiden/bench-rollout-${tag}`;
    const qemuBuilds: ImageBuildRecord[] = [];
    const imageA = `bench-hosts-${tag}`;
    let buildBytes = 0;
    {
      const push = new RegistryClient(endpoint);
      try {
        for (const i of [0, 1]) {
          const src = makeImageDir(join(dir, `qemu-build-${i}`), diskMiB * MiB, `bench-rollout-${i}`);
          const t = performance.now();
          const pushed = await pushQemuImage(push, repository, src);
          buildBytes = pushed.size;
          console.log(`  pushed build ${i}: ${pushed.digest.slice(0, 19)}… in ${Math.round(performance.now() - t)} ms`);
          qemuBuilds.push(record(imageA, `b${i}`, pushed.digest, `${registry.host}/${repository}@${pushed.digest}`, pushed.size, 'bench-host-00'));
          rmSync(src, { recursive: true, force: true });
        }
      } finally {
        push.close();
      }
    }

    // Fake-driver builds for the pool of (b): the runner stand-in and a copy that differs by a file.
    const standinA = join(dir, 'standin-a');
    await installStandinRunner({ dir: join(standinA, 'actions-runner') });
    const standinB = join(dir, 'standin-b');
    cpSync(standinA, standinB, { recursive: true });
    writeFileSync(join(standinB, 'provisioned-by-build-b'), 'b\n');
    const probe = new FakeDriver({ root: join(dir, 'probe'), images: { a: standinA, b: standinB } });
    const fakeDigests = [(await probe.pullImage({ image: 'a' })).digest, (await probe.pullImage({ image: 'b' })).digest];
    const imageB = `bench-pool-${tag}`;
    const poolRepo = `ekiden/bench-pool-${tag}`;
    const fakeRefs = fakeDigests.map((d) => `${registry.host}/${poolRepo}@${d}`);
    const fakeBuilds = fakeDigests.map((d, i) => record(imageB, `b${i}`, d, fakeRefs[i]!, 1, 'bench-host-00'));

    // The hosts.
    const scope = { kind: 'repo' as const, owner: 'bench', repo: 'images' };
    const github = new RunnerRegistry(createOctokit({ apiUrl: url, auth: { kind: 'token', token: TOKEN }, scope, writeSpacingMs: 0 }), scope);
    const hostIds = Array.from({ length: hosts }, (_, i) => `bench-host-${String(i).padStart(2, '0')}`);
    const caches = new Map<string, ImageCache>();
    for (const [i, id] of hostIds.entries()) {
      const dataDir = join(dir, 'hosts', id, 'data');
      mkdirSync(dataDir, { recursive: true });
      const cache = hostImageCache(dataDir);
      caches.set(id, cache);
      const driver = new FakeDriver({ root: join(dir, 'hosts', id, 'vms'), images: { [fakeRefs[0]!]: standinA, [fakeRefs[1]!]: standinB } });
      drivers.push(driver);
      const worker = await createHostWorker({
        connection: native,
        namespace: 'default',
        hostId: id,
        driver,
        github,
        githubRunnerUrl: scopeWebUrl(url, scope),
        dataDir,
        workflowBundlePath: bundle,
        pollIntervalMs: 200,
        shutdownGraceMs: 2_000,
        // One worker serves the workflows and shared activities; every one serves its host.
        serveShared: i === 0,
        serveHost: true,
        client: c,
        capacity,
        labels: ['bench-images'],
        confirmDelayMs: 200,
        images: { registry: endpoint, cache },
      });
      const running = worker.run().catch((err: unknown) => void workerErrors.push(`${id}: ${errorMessage(err)}`));
      workers.push({ id, worker, running });
    }
    closers.push({
      what: 'host workers',
      run: async () => {
        for (const w of workers) w.worker.shutdown();
        await bounded('host workers', 60_000, Promise.all(workers.map((w) => w.running)));
      },
    });
    await Promise.all(hostIds.map((id) => waitFor(`host ${id} up`, timeoutMs, 200, () => c.workflow.getHandle(hostWorkflowId(id)).query(hostStatusQuery), (s) => s.state === 'up')));
    console.log(`  ${hosts} host workers up`);

    const timing = resolveRunnerTiming({ heartbeatTimeoutMs: 10_000 });
    const startPool = async (name: string, onHosts: string[], size: number, max: number) => {
      const config: PoolConfig = {
        name,
        hosts: onHosts,
        image: `catalog:${name}`,
        labels: ['self-hosted', `lbl-${name}`],
        runnerGroupId: 1,
        runnerDir: 'actions-runner',
        credential: 'jit',
        size,
        minIdle: 0,
        max,
        timing,
        backoff: { initialMs: 1_000, maxMs: 4_000 },
      };
      const h = await c.workflow.start<typeof PoolWorkflow>('PoolWorkflow', {
        workflowId: poolWorkflowId(name),
        taskQueue: SHARED_TASK_QUEUE,
        args: [{ config, tuning: resolvePoolTuning({ hostRetryMs: 500 }) }],
        typedSearchAttributes: [{ key: SA_POOL, value: name }],
      });
      pools.push(h);
      return h;
    };
    const startCatalog = async (image: string, builds: ImageBuildRecord[]) => {
      const h = await c.workflow.start<typeof ImageCatalogWorkflow>('ImageCatalogWorkflow', {
        workflowId: imageCatalogWorkflowId(image),
        taskQueue: SHARED_TASK_QUEUE,
        args: [{ image, keep: 3, promote: 'manual' }],
      });
      catalogs.push(h);
      for (const b of builds) await h.signal(imageBuiltSignal, b);
      await waitFor(`catalog ${image} holds its builds`, timeoutMs, 100, () => h.query(imageStatusQuery), (s) => s.builds.length === builds.length);
      return h;
    };

    // Baseline: the same pulls, pullQemuImage, 3 at a time, no Temporal; before and after (a),
    // as the machine's load drifts.
    const baseline = async (when: string) => {
      const tb = performance.now();
      await limited(hosts, PREFETCH_CONCURRENCY, async (i) => {
        const pull = new RegistryClient(endpoint);
        try {
          await pullQemuImage(pull, repository, qemuBuilds[0]!.digest, join(dir, 'baseline', `host-${i}`));
        } finally {
          pull.close();
        }
      });
      const ms = performance.now() - tb;
      rmSync(join(dir, 'baseline'), { recursive: true, force: true });
      console.log(`  (a) baseline ${when}: ${hosts} × pullQemuImage of build 0, ${PREFETCH_CONCURRENCY} at a time: ${Math.round(ms)} ms`);
      return ms;
    };
    const baselineBeforeMs = await baseline('before');

    // (a) Promote → every host ready.
    const catalogA = await startCatalog(imageA, qemuBuilds);
    const poolA = await startPool(imageA, hostIds, 0, 1);
    await waitFor(`pool ${imageA} running`, timeoutMs, 100, () => poolA.query(poolStatusQuery), () => true);
    const promoteUntilReady = async (build: ImageBuildRecord, label: string) => {
      const t0 = performance.now();
      await catalogA.executeUpdate(promoteImageUpdate, { args: [{ digest: build.digest }] });
      let first = 0;
      let ready = 0;
      const s = await waitFor<ImageCatalogStatus>(`rollout of ${label} to ${hosts} hosts`, timeoutMs, 50, () => catalogA.query(imageStatusQuery), (x) => {
        const r = x.rollout;
        if (r?.digest !== build.digest) return false;
        if (!first && r.hostsReady.length > 0) first = performance.now() - t0;
        if (r.hostsFailed.length > 0) throw new Error(`hosts failed to prefetch: ${JSON.stringify(r.hostsFailed).slice(0, 600)}`);
        if (!ready && r.hostsReady.length === hosts) ready = performance.now() - t0;
        return r.state === 'done';
      });
      const done = performance.now() - t0;
      if (!ready) ready = done;
      for (const id of hostIds) if (!(await caches.get(id)!.has(build.digest))) throw new Error(`${id}'s cache does not hold ${build.digest}`);
      console.log(`  (a) ${label}: promote → first host ready ${Math.round(first)} ms, all ${hosts} ready ${Math.round(ready)} ms, rollout done ${Math.round(done)} ms (pools ${s.rollout?.pools.length})`);
      return { first, ready, done };
    };
    const cold = await promoteUntilReady(qemuBuilds[0]!, 'build 0 (cold caches)');
    const warm = await promoteUntilReady(qemuBuilds[1]!, 'build 1 (build 0 cached)');

    const baselineAfterMs = await baseline('after');
    const baselinePullsMs = (baselineBeforeMs + baselineAfterMs) / 2;
    console.log(`  (a) Ekiden / baseline (mean of before and after) ${r2(cold.ready / baselinePullsMs)}`);

    // (b) A pool of `poolRunners` warm runners rolled onto a new digest.
    const catalogB = await startCatalog(imageB, fakeBuilds);
    await catalogB.executeUpdate(promoteImageUpdate, { args: [{ digest: fakeDigests[0]! }] });
    await waitFor('catalog B rollout of build 0', timeoutMs, 100, () => catalogB.query(imageStatusQuery), (s) => s.rollout?.digest === fakeDigests[0] && s.rollout.state === 'done');
    const tw = performance.now();
    const poolB = await startPool(imageB, hostIds.slice(0, 2), poolRunners, poolRunners + 2);
    const alive = (s: PoolStatus) => s.runners.filter((r) => r.phase !== 'cleaning');
    const allOn = (digest: string) => (s: PoolStatus) => alive(s).length === poolRunners && alive(s).every((r) => r.phase === 'idle' && r.imageDigest === digest);
    await waitFor(`${poolRunners} idle runners on build 0`, timeoutMs, 100, () => poolB.query(poolStatusQuery), allOn(fakeDigests[0]!));
    const poolWarmMs = performance.now() - tw;
    console.log(`  (b) pool of ${poolRunners} warm on build 0 in ${Math.round(poolWarmMs)} ms`);

    const t1 = performance.now();
    await catalogB.executeUpdate(promoteImageUpdate, { args: [{ digest: fakeDigests[1]! }] });
    let notified = 0;
    let firstRunner = 0;
    const newDigest = fakeDigests[1]!;
    const pollCatalog = (async () => {
      const s = await waitFor('catalog B rollout of build 1', timeoutMs, 50, () => catalogB.query(imageStatusQuery), (x) => x.rollout?.digest === newDigest && x.rollout.state === 'done');
      notified = performance.now() - t1;
      return s;
    })();
    await waitFor(`${poolRunners} idle runners on build 1`, timeoutMs, 100, () => poolB.query(poolStatusQuery), (s) => {
      if (!firstRunner && s.runners.some((r) => r.phase === 'idle' && r.imageDigest === newDigest)) firstRunner = performance.now() - t1;
      return allOn(newDigest)(s);
    });
    const rollPoolMs = performance.now() - t1;
    const rolledOut = await pollCatalog;
    console.log(
      `  (b) promote → pool told ${Math.round(notified)} ms (hosts prefetched ${rolledOut.rollout?.hostsReady.length}, failed ${rolledOut.rollout?.hostsFailed.length}: ${rolledOut.rollout?.hostsFailed[0]?.message.slice(-90) ?? '-'}),` +
        ` first runner on build 1 ${Math.round(firstRunner)} ms, all ${poolRunners} ${Math.round(rollPoolMs)} ms (${Math.round(rollPoolMs / poolRunners)} ms per runner)`,
    );
    if (workerErrors.length) throw new Error(`host worker(s) failed: ${workerErrors.join('; ')}`);

    return {
      hosts,
      diskMiB,
      buildBytes,
      promoteToHostsReadyMs: Math.round(cold.ready),
      promoteToFirstHostReadyMs: Math.round(cold.first),
      promoteToRolloutDoneMs: Math.round(cold.done),
      secondPromoteToHostsReadyMs: Math.round(warm.ready),
      baselinePullsMs: Math.round(baselinePullsMs),
      baselineBeforeMs: Math.round(baselineBeforeMs),
      baselineAfterMs: Math.round(baselineAfterMs),
      ratioHostsReady: r2(cold.ready / baselinePullsMs),
      poolRunners,
      rollPoolMs: Math.round(rollPoolMs),
      rollPoolNotifiedMs: Math.round(notified),
      rollPoolFirstRunnerMs: Math.round(firstRunner),
      msPerRunner: r1(rollPoolMs / poolRunners),
      recycleMsPerRunner: r1((rollPoolMs - notified) / poolRunners),
      poolWarmMs: Math.round(poolWarmMs),
    };
  } catch (err) {
    const warnings = logTail.filter((l) => /"level":"(WARN|ERROR)"/.test(l)).slice(-8);
    if (warnings.length) console.log(`  last worker warnings:\n    ${warnings.map((l) => l.slice(0, 400)).join('\n    ')}`);
    throw err;
  } finally {
    const td = performance.now();
    if (client) {
      const c = client;
      for (const p of pools) await p.cancel().catch(() => {});
      await bounded('pools ending', 60_000, Promise.all(pools.map((p) => p.result().catch(() => undefined))));
      await bounded('runners ending', 60_000, cancelRunners(c, () => true, 50_000).catch((err: unknown) => console.log(`  (teardown: ${errorMessage(err)})`)));
      for (const h of catalogs) await h.terminate().catch(() => {});
    }
    for (const closer of closers.reverse()) {
      if (closer.what === 'host workers') {
        await closer.run().catch((err: unknown) => console.log(`  (teardown: ${closer.what}: ${errorMessage(err)})`));
        for (const d of drivers) {
          for (const vm of await d.list().catch(() => [])) {
            await d.stop({ name: vm.name, timeoutMs: 1_000 }).catch(() => {});
            await d.delete({ name: vm.name }).catch(() => {});
          }
        }
        continue;
      }
      await closer.run().catch((err: unknown) => console.log(`  (teardown: ${closer.what}: ${errorMessage(err)})`));
    }
    rmSync(dir, { recursive: true, force: true });
    console.log(`  teardown: ${Math.round(performance.now() - td)} ms`);
  }
}

function record(image: string, id: string, digest: string, ref: string, bytes: number, host: string): ImageBuildRecord {
  return {
    image,
    buildId: `image-build/${image}/${id}`,
    digest,
    ref,
    bytes,
    runnerVersion: 'bench',
    baseDigest: digest,
    templateHash: 'bench',
    builtAt: new Date().toISOString(),
    host,
    durationMs: 0,
  };
}
