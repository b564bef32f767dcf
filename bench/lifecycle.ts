/**
 * `npm run bench:lifecycle`: what Ekiden adds to a runner's life beyond the driver's own work.
 *
 * Baseline (same process, same driver, same image): clone → start → SSH ready → launch, and
 * after the runner exits: stop → delete, called directly. Ekiden: the same steps as a
 * RunnerWorkflow on a real Temporal dev server, timed from the history's event times
 * (workflow start → launchRunner completed; awaitRunnerExit completed → destroyVm completed).
 * Overhead = Ekiden − baseline, per lifecycle. Then 20 lifecycles in parallel on one worker.
 * Last line: JSON.
 */
import { resolveRunnerTiming } from '../core/defaults.js';
import { Client, Connection } from '@temporalio/client';
import type { temporal } from '@temporalio/proto';
import { NativeConnection } from '@temporalio/worker';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FakeDriver } from '../drivers/fake.js';
import { GitHubEmulator } from '../emulator/github/server.js';
import { installStandinRunner } from '../emulator/runner/install.js';
import { createOctokit, scopeWebUrl } from '../github/client.js';
import { RunnerRegistry } from '../github/runners.js';
import { waitForSsh } from '../ssh/client.js';
import { collectDiag, launchRunner, runnerStatus } from '../ssh/runner.js';
import { defaultCacheDir, locateTemporalCli, startDevServer } from '../temporal/dev-server.js';
import { createHostWorker } from '../workers/host-worker.js';
import { installRuntime } from '../workers/logging.js';
import { WORKFLOW_BUNDLE } from '../workers/main.js';
import type { RunnerWorkflow } from '../workflows/runner.js';

const N = Number(process.env.BENCH_LIFECYCLES ?? 50);
const PARALLEL = Number(process.env.BENCH_PARALLEL ?? 20);
const IMAGE = 'ekiden/runner-standin:bench';
const REPO = 'bench/app';
const TOKEN = 'ghp_bench_token';

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
};
const ms = (t: temporal.api.history.v1.IHistoryEvent | undefined) => {
  const ts = t?.eventTime;
  return Number(ts?.seconds ?? 0) * 1000 + Math.floor((ts?.nanos ?? 0) / 1e6);
};

async function main(): Promise<void> {
  installRuntime({ level: 'WARN', sink: () => {} });
  const dir = mkdtempSync(join(tmpdir(), 'ekiden-bench-'));
  const cli = await locateTemporalCli({ explicitPath: process.env.TEMPORAL_CLI_PATH, searchPath: process.env.PATH, cacheDir: defaultCacheDir(process.env), allowGoInstall: true });
  if (!cli) throw new Error('no Temporal CLI; set TEMPORAL_CLI_PATH');
  const server = await startDevServer({ cliPath: cli, ui: false, logFile: join(dir, 'temporal.log') });
  const emulator = new GitHubEmulator({ tokens: [TOKEN], repos: [REPO] });
  const { url } = await emulator.start();
  const imageDir = join(dir, 'image');
  await installStandinRunner({ dir: join(imageDir, 'actions-runner') });
  const driver = new FakeDriver({ root: join(dir, 'vms'), images: { [IMAGE]: imageDir } });
  await driver.pullImage({ image: IMAGE });
  const scope = { kind: 'repo' as const, owner: 'bench', repo: 'app' };
  const registry = new RunnerRegistry(createOctokit({ apiUrl: url, auth: { kind: 'token', token: TOKEN }, scope, writeSpacingMs: 0 }), scope);
  const labels = ['self-hosted', 'bench'];

  const native = await NativeConnection.connect({ address: server.address });
  const connection = await Connection.connect({ address: server.address });
  const client = new Client({ connection });
  const worker = await createHostWorker({
    connection: native,
    namespace: 'default',
    hostId: 'bench',
    driver,
    github: registry,
    githubRunnerUrl: scopeWebUrl(url, scope),
    dataDir: join(dir, 'host'),
    workflowBundlePath: WORKFLOW_BUNDLE,
    pollIntervalMs: 20,
  });
  const running = worker.run();
  const spec = { pool: 'bench', host: 'bench', image: IMAGE, labels, runnerGroupId: 1, runnerDir: 'actions-runner', credential: 'jit' as const };

  const lifecycle = async (i: number, tag: string) => {
    const handle = await client.workflow.start<typeof RunnerWorkflow>('RunnerWorkflow', {
      workflowId: `runner/bench/${tag}-${i}`,
      taskQueue: 'ekiden',
      args: [{ spec, timing: resolveRunnerTiming({ heartbeatTimeoutMs: 10_000 }) }],
    });
    emulator.queueJob({ repo: REPO, labels, steps: [{ run: 'true' }] });
    await handle.result();
    const events = (await handle.fetchHistory()).events ?? [];
    const scheduled = new Map<string, string>();
    const completedAt: Record<string, number> = {};
    for (const e of events) {
      const s = e.activityTaskScheduledEventAttributes;
      if (s) scheduled.set(String(e.eventId), s.activityType!.name!);
      const c = e.activityTaskCompletedEventAttributes;
      if (c) completedAt[scheduled.get(String(c.scheduledEventId))!] = ms(e);
    }
    return {
      up: completedAt.launchRunner! - ms(events[0]),
      down: completedAt.destroyVm! - completedAt.awaitRunnerExit!,
      events: events.length,
    };
  };

  // Baseline: the driver's and the runner's own work, no orchestration.
  const baseUp: number[] = [];
  const baseDown: number[] = [];
  const baselineLifecycle = async (i: number) => {
    const name = `ekiden-base-${String(i).padStart(7, '0')}-1`;
    const t0 = performance.now();
    const jit = await registry.createJitConfig({ name: `ekiden-base-${String(i).padStart(7, '0')}`, labels, runnerGroupId: 1 });
    await driver.clone({ image: IMAGE, name });
    await driver.start({ name });
    const endpoint = await driver.sshEndpoint({ name, timeoutMs: 30_000 });
    await waitForSsh({ endpoint, timeoutMs: 30_000, intervalMs: 20 });
    await launchRunner({ endpoint, runnerDir: 'actions-runner', credential: { kind: 'jit', encodedJitConfig: jit.encodedJitConfig } });
    baseUp.push(performance.now() - t0);
    emulator.queueJob({ repo: REPO, labels, steps: [{ run: 'true' }] });
    for (;;) {
      const st = await runnerStatus({ endpoint, runnerDir: 'actions-runner' });
      if (st.launched && !st.running) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    const t1 = performance.now();
    await collectDiag({ endpoint, runnerDir: 'actions-runner', destDir: join(dir, 'base-logs', name) });
    await driver.stop({ name });
    await driver.delete({ name });
    baseDown.push(performance.now() - t1);
  };

  await lifecycle(0, 'warmup');
  const ekUp: number[] = [];
  const ekDown: number[] = [];
  let events = 0;
  await baselineLifecycle(N); // warm-up, not counted
  baseUp.length = 0;
  baseDown.length = 0;
  // Interleaved, so both see the same machine state (caches, background load).
  for (let i = 0; i < N; i++) {
    await baselineLifecycle(i);
    const r = await lifecycle(i, 'seq');
    ekUp.push(r.up);
    ekDown.push(r.down);
    events = r.events;
  }
  const t0 = performance.now();
  await Promise.all(Array.from({ length: PARALLEL }, (_, i) => lifecycle(i, 'par')));
  const parSeconds = (performance.now() - t0) / 1000;

  worker.shutdown();
  await running;
  await native.close();
  await connection.close();
  await emulator.stop();
  await server.stop();
  rmSync(dir, { recursive: true, force: true });

  const addedUp = ekUp.map((v, i) => v - baseUp[i]!);
  const addedDown = ekDown.map((v, i) => v - baseDown[i]!);
  const added = addedUp.map((v, i) => v + addedDown[i]!);
  const result = {
    lifecycles: N,
    baseline_up_p50_ms: Math.round(pct(baseUp, 50)),
    ekiden_up_p50_ms: Math.round(pct(ekUp, 50)),
    baseline_down_p50_ms: Math.round(pct(baseDown, 50)),
    ekiden_down_p50_ms: Math.round(pct(ekDown, 50)),
    added_up_p50_ms: Math.round(pct(addedUp, 50)),
    added_up_p95_ms: Math.round(pct(addedUp, 95)),
    added_down_p50_ms: Math.round(pct(addedDown, 50)),
    added_down_p95_ms: Math.round(pct(addedDown, 95)),
    added_total_p50_ms: Math.round(pct(added, 50)),
    added_total_p95_ms: Math.round(pct(added, 95)),
    ratio_up_p50: +(pct(ekUp, 50) / pct(baseUp, 50)).toFixed(2),
    parallel: PARALLEL,
    parallel_lifecycles_per_s: +(PARALLEL / parSeconds).toFixed(2),
    history_events_per_lifecycle: events,
  };
  console.log(`baseline up p50 ${result.baseline_up_p50_ms} ms, Ekiden up p50 ${result.ekiden_up_p50_ms} ms (×${result.ratio_up_p50})`);
  console.log(`added per lifecycle: p50 ${result.added_total_p50_ms} ms, p95 ${result.added_total_p95_ms} ms (up ${result.added_up_p50_ms}/${result.added_up_p95_ms}, down ${result.added_down_p50_ms}/${result.added_down_p95_ms})`);
  console.log(`${PARALLEL} in parallel on one worker: ${result.parallel_lifecycles_per_s} lifecycles/s`);
  console.log(JSON.stringify(result));
}

await main();
