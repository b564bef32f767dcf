/**
 * `npm run bench:fleet [-- --rate 0.5 --duration 90 --hosts 50 --slots 2 --pools 2 --min-idle 1 --max 100
 *  --job-seconds 0 --skip-baseline]`:
 * a simulated fleet under steady demand, on one Temporal dev server and the GitHub emulator.
 *
 * Fleet: `--hosts` host workers in this one process (ids h01…h50, one NativeConnection, each
 * with its own FakeDriver root over the same image, each announcing itself with capacity
 * `--slots`; only h01 also serves the shared queue — workflows and GitHub activities), and
 * `--pools` PoolWorkflows spanning every host (size 0, minIdle `--min-idle`, max `--max`, a
 * label each; jobs alternate between them; a job runs `echo hi`, after `sleep N` with
 * `--job-seconds N`). Demand takes the product path: jobs are queued in
 * the emulator, which sends signed `workflow_job` webhooks to the receiver (webhooks/server.ts),
 * which routes them to the pools (`jobQueued`, `jobProgress`) and to the runner that took the
 * job; the pools place runners through the HostWorkflows' `acquireSlot` update.
 *
 * Baseline (same process, server, emulator, driver, image, job count and rate; run first,
 * before the fleet exists): ONE host worker serving both queues, no PoolWorkflow, no
 * HostWorkflow, no webhooks. The bench keeps the same number of runners warm (pools ×
 * min-idle) and starts one RunnerWorkflow directly for every job it queues — the policy a pool
 * follows in its steady state (a job takes a warm runner, a new one replaces it) without the
 * machinery. The ratios (fleet ÷ baseline) are therefore "what pools, host slots, 50 host
 * workers and webhook routing cost per lifecycle", not "Ekiden against no Ekiden"
 * (bench:lifecycle measures that). With warm runners both sides assign a job within a few ms
 * (the emulator hands it to a polling runner at once), so queue → assigned separates them only
 * when a pool has no warm runner at hand (`jobs waiting > 1 s`).
 *
 * Each phase: 10 s idle with the runners warm (CPU per second), then the jobs, measured over a
 * window from the first job queued until every job has completed and every runner that ran one
 * has closed:
 * - lifecycles per minute: RunnerWorkflows of the phase that closed in the window ÷ window.
 *   Demand-bound by construction (jobs arrive at `--rate`); "runner lives started per job" and
 *   the settled outcomes show waste (runners started, then retired without a job).
 * - queue → assigned: from the bench's queueJob call to the emulator's `in_progress` event for
 *   the job (runner_name set), p50 / p95 / max.
 * - CPU per lifecycle: process.cpuUsage() of this process (every worker, the emulator, the
 *   webhook receiver and the bench itself); the Temporal dev server from /proc/<pid>/stat; the
 *   fake VMs are separate processes — what this process reaped of them (its cutime + cstime)
 *   is a lower bound (runner processes reparented away from their guest are not counted). The
 *   machine's busy share (/proc/stat) includes other users of this machine.
 * - history events per lifecycle: RunnerWorkflow histories (fetchHistory on ≤ 20 runners that
 *   served a job), plus the PoolWorkflows' and HostWorkflows' events in the window (every run,
 *   continue-as-new included) ÷ the window's lifecycles. The sample also tells how many runners
 *   had their awaitJobStart cancelled by a retirement although a job had landed on them.
 *
 * Defaults are sized for 2 shared cores and a run of about 5 minutes (two 90 s phases). At the
 * end (and on SIGINT/SIGTERM; a second one exits at once): pools cancelled (their runners
 * deregister and delete their VMs), remaining runners cancelled, leftovers counted and printed
 * — fake VM processes, VM directories, emulator runner registrations, open RunnerWorkflows —
 * then workers, receiver, emulator and server stop. Exit code 1 on error, interruption or
 * leftovers. Last line: one JSON object.
 */
import { Client, Connection, WorkflowNotFoundError } from '@temporalio/client';
import type { temporal } from '@temporalio/proto';
import { NativeConnection } from '@temporalio/worker';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import type { Server } from 'node:http';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { hostWorkflowId, parseRunnerName, poolWorkflowId, runnerWorkflowId, runToken, SHARED_TASK_QUEUE } from '../core/names.js';
import type { RunnerTiming } from '../core/runner-spec.js';
import { RunnerPhase, SA_HOST, SA_PHASE, SA_POOL } from '../core/search-attributes.js';
import { GUEST_FLAG } from '../drivers/fake-procs.js';
import { FakeDriver } from '../drivers/fake.js';
import { GitHubEmulator, type JobEvent } from '../emulator/github/server.js';
import { installStandinRunner } from '../emulator/runner/install.js';
import { createOctokit, scopeWebUrl } from '../github/client.js';
import { RunnerRegistry } from '../github/runners.js';
import { defaultCacheDir, locateTemporalCli, startDevServer } from '../temporal/dev-server.js';
import type { WebhookLogger } from '../webhooks/log.js';
import { closeServer, createWebhookServer, listenOn, WEBHOOK_PATH } from '../webhooks/server.js';
import { createHostWorker, type HostWorker } from '../workers/host-worker.js';
import { installRuntime } from '../workers/logging.js';
import { WORKFLOW_BUNDLE } from '../workers/main.js';
import { hostStatusQuery, poolStatusQuery, type PoolConfig } from '../workflows/api.js';
import type { PoolWorkflow } from '../workflows/pool.js';
import type { RunnerWorkflow } from '../workflows/runner.js';

const REPO = 'bench/fleet';
const TOKEN = 'ghp_bench_fleet_token';
const IMAGE = 'ekiden/runner-standin:bench';
const BASE_HOST = 'base';
const BASE_POOL = 'base';
/** As `ekiden up` runs fake hosts: heartbeats within 10 s. */
const TIMING: Partial<RunnerTiming> = { heartbeatTimeoutMs: 10_000 };
const POLL_MS = 200;
/** After the last job is queued: how long the jobs and their runners may take to finish. */
const DRAIN_TIMEOUT_MS = 120_000;
/** Idle measurement before each phase's first job (warm runners, no jobs). */
const IDLE_MS = 10_000;
/** After a phase: how long surplus runners may take to be retired before outcomes are read. */
const SETTLE_MS = 20_000;

type HistoryEvent = temporal.api.history.v1.IHistoryEvent;

const pct = (xs: number[], p: number) => {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
};
const r0 = (n: number) => (Number.isFinite(n) ? Math.round(n) : null);
const r1 = (n: number) => (Number.isFinite(n) ? Math.round(n * 10) / 10 : null);
const r2 = (n: number) => (Number.isFinite(n) ? Math.round(n * 100) / 100 : null);
const ratio = (a: number, b: number) => (Number.isFinite(a) && Number.isFinite(b) && b > 0 ? r2(a / b) : null);
const fmt = (n: number | null, unit = '') => (n === null ? 'n/a' : `${n}${unit}`);

// ───────────────────────────── CPU accounting ─────────────────────────────

let clockTicks = 100;
try {
  clockTicks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
} catch {
  // Linux's usual USER_HZ
}

/** utime, stime, cutime, cstime of a process, in ms. */
function procTimes(pid: number | 'self'): { self: number; children: number } | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // After "pid (comm) ": state is f[0]; utime f[11], stime f[12], cutime f[13], cstime f[14].
    const ms = (i: number) => (Number(f[i]) * 1000) / clockTicks;
    return { self: ms(11) + ms(12), children: ms(13) + ms(14) };
  } catch {
    return undefined;
  }
}

/** Busy and total jiffies of the whole machine. */
function machineTimes(): { busy: number; total: number } | undefined {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n')[0]!;
    const v = line.trim().split(/\s+/).slice(1).map(Number);
    const total = v.reduce((a, b) => a + b, 0);
    const idle = (v[3] ?? 0) + (v[4] ?? 0);
    return { busy: total - idle, total };
  } catch {
    return undefined;
  }
}

interface CpuSnapshot {
  at: number;
  wall: number;
  process: NodeJS.CpuUsage;
  server?: number;
  reaped?: number;
  machine?: { busy: number; total: number };
}

function cpuSnapshot(serverPid: number): CpuSnapshot {
  return {
    at: performance.now(),
    wall: Date.now(),
    process: process.cpuUsage(),
    server: procTimes(serverPid)?.self,
    reaped: procTimes('self')?.children,
    machine: machineTimes(),
  };
}

// ───────────────────────────── fake VM processes ─────────────────────────────

/** Live fake-guest processes serving a VM under `dir` (zombies excluded). */
function guestPidsUnder(dir: string): number[] {
  const pids: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const argv = readFileSync(`/proc/${name}/cmdline`, 'utf8').split('\0');
      const at = argv.indexOf(GUEST_FLAG);
      if (at < 0 || !(argv[at + 1] ?? '').startsWith(dir)) continue;
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
      if (state !== 'Z' && state !== 'X') pids.push(Number(name));
    } catch {
      // gone, or not ours to read
    }
  }
  return pids;
}

// ───────────────────────────── the bench ─────────────────────────────

interface JobRecord {
  id: number;
  queuedAt: number;
}

interface PhaseSpec {
  name: string;
  labelsFor: (i: number) => string[];
  /** Called right after each job is queued (the baseline starts its runner here). */
  onQueued?: (i: number) => void;
  ownsRunner: (workflowId: string) => boolean;
  /** GitHub runner names of the phase start with one of these. */
  runnerPrefixes: string[];
  poolIds: string[];
  hostIds: string[];
}

interface PhaseResult {
  jobs: number;
  jobsCompleted: number;
  jobsSucceeded: number;
  /** First job queued → every job done and every runner that ran one closed. */
  windowS: number;
  lifecycles: number;
  lifecyclesPerMin: number;
  /** RunnerWorkflows started in the window per job (1 = no runner wasted). */
  runnerLivesPerJob: number;
  assignP50Ms: number;
  assignP95Ms: number;
  assignMaxMs: number;
  /** Jobs that waited more than a second for a runner (no warm one was there). */
  coldJobs: number;
  /** Runners online and idle at the emulator during the window, sampled every 500 ms. */
  idleRunnersAvg: number;
  idleRunnersMax: number;
  workerCpuMsPerLifecycle: number;
  workerCpuMsPerJob: number;
  serverCpuMsPerLifecycle: number;
  fakeVmCpuMsPerLifecycleLowerBound: number;
  machineBusyPct: number;
  /** This run's own processes (bench, dev server, reaped fake VMs) as a share of all cores. */
  ownBusyPct: number;
  /** With the runners warm and no jobs, before the first job: CPU ms per second. */
  idleWorkerCpuMsPerS: number;
  idleServerCpuMsPerS: number;
  /** Sampled runners that served a job after their awaitJobStart was cancelled (retired while the job landed). */
  retiredWithJobPct: number;
  runnerEventsPerLifecycle: number;
  runnerEventsSample: number;
  poolEventsPerLifecycle: number;
  hostEventsPerLifecycle: number;
  outcomes: Record<string, number>;
  /** Outcomes of every runner of the phase once it settled (retirements after the window included). */
  settledOutcomes: Record<string, number>;
  runnerEventTypes: Record<string, number>;
  runnerActivityTypes: Record<string, number>;
}

/** A promise that gives up after `ms` (the timer never outlives it). */
async function within<T>(ms: number, what: string, work: () => Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      work(),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms / 1000} s`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      rate: { type: 'string', default: '0.5' },
      duration: { type: 'string', default: '90' },
      hosts: { type: 'string', default: '50' },
      slots: { type: 'string', default: '2' },
      pools: { type: 'string', default: '2' },
      'min-idle': { type: 'string', default: '1' },
      max: { type: 'string', default: '100' },
      'job-seconds': { type: 'string', default: '0' },
      'skip-baseline': { type: 'boolean', default: false },
    },
  });
  const RATE = Number(values.rate);
  const DURATION_S = Number(values.duration);
  const HOSTS = Number(values.hosts);
  const SLOTS = Number(values.slots);
  const POOLS = Number(values.pools);
  const MIN_IDLE = Number(values['min-idle']);
  const MAX = Number(values.max);
  const JOB_S = Number(values['job-seconds']);
  if (!(JOB_S >= 0 && JOB_S <= 600)) throw new Error(`--job-seconds: ${values['job-seconds']} is not between 0 and 600`);
  const JOB_RUN = JOB_S > 0 ? `sleep ${JOB_S}; echo hi` : 'echo hi';
  for (const [k, v] of Object.entries({ rate: RATE, duration: DURATION_S, hosts: HOSTS, slots: SLOTS, pools: POOLS, max: MAX })) {
    if (!(v > 0)) throw new Error(`--${k}: ${v} is not a positive number`);
  }
  if (!(Number.isInteger(MIN_IDLE) && MIN_IDLE >= 0)) throw new Error(`--min-idle: ${MIN_IDLE} is not a whole number ≥ 0`);
  if (!Number.isInteger(HOSTS) || HOSTS > 99) throw new Error('--hosts: a whole number, at most 99 (ids h01…h99)');
  if (!Number.isInteger(POOLS) || POOLS > 26) throw new Error('--pools: a whole number, at most 26');
  const JOBS = Math.max(1, Math.round(RATE * DURATION_S));
  const WARM = POOLS * MIN_IDLE;

  // ── interruption: the first signal cleans up, a second one exits at once ──
  const abort = new AbortController();
  const onSignal = (sig: string) => {
    if (abort.signal.aborted) {
      console.log(`${sig} again: exiting without cleanup (temp dir and fake VMs may be left)`);
      process.exit(130);
    }
    console.log(`${sig}: stopping — cancelling pools and runners, then checking for leftovers (${sig} again exits at once)`);
    abort.abort(new Error(`interrupted (${sig})`));
  };
  process.on('SIGINT', () => onSignal('SIGINT'));
  process.on('SIGTERM', () => onSignal('SIGTERM'));
  const pause = (ms: number) => sleep(ms, undefined, { signal: abort.signal });

  // ── logs: counted, the most frequent ones shown at the end ──
  /** Which part of the run a warning belongs to: setup, baseline, fleet or cleanup. */
  let stage = 'setup';
  const warnings = new Map<string, number>();
  let sdkNotices = 0;
  const noteWarning = (msg: string) => {
    // Activity-only workers (the host queues) say so once each: expected, not a problem.
    if (msg.includes('No workflows registered, not polling for workflow tasks')) {
      sdkNotices++;
      return;
    }
    const key = `[${stage}] ${msg}`;
    warnings.set(key, (warnings.get(key) ?? 0) + 1);
  };
  installRuntime({
    level: 'WARN',
    sink: (line) => {
      try {
        const o = JSON.parse(line) as { level?: string; msg?: string; message?: string };
        if (o.level === 'WARN' || o.level === 'ERROR') noteWarning(`worker ${o.level} ${o.msg ?? ''}${o.message ? `: ${o.message}` : ''}`.slice(0, 200));
      } catch {
        noteWarning(line.slice(0, 200));
      }
    },
  });
  const webhookLog: WebhookLogger = {
    info: () => {},
    warn: (msg, f) => noteWarning(`webhook WARN ${msg}${f?.reason ? `: ${String(f.reason)}` : ''}`.slice(0, 200)),
    error: (msg, f) => noteWarning(`webhook ERROR ${msg}${f?.reason ? `: ${String(f.reason)}` : ''}`.slice(0, 200)),
  };
  // The host worker prints its start-up lines (reconciled at start, …) with console.error.
  const consoleError = console.error;
  let workerInfoLines = 0;
  console.error = (...args: unknown[]) => {
    const text = args.map(String).join(' ');
    if (text.includes('"level":"INFO"')) workerInfoLines++;
    else if (text.includes('"level":"WARN"')) noteWarning(text.slice(0, 200));
    else consoleError(...args);
  };

  const startedAt = performance.now();
  const t = () => `${((performance.now() - startedAt) / 1000).toFixed(1).padStart(6)} s`;
  const say = (line: string) => console.log(`${t()}  ${line}`);
  console.log(
    `bench:fleet — ${HOSTS} hosts × ${SLOTS} slots, ${POOLS} pool(s) (size 0, minIdle ${MIN_IDLE}, max ${MAX}), ` +
      `${JOBS} jobs (\`${JOB_RUN}\`) at ${RATE}/s per phase; baseline: ${values['skip-baseline'] ? 'skipped' : `one host, direct RunnerWorkflows, ${WARM} kept warm`}`,
  );

  const dir = mkdtempSync(join(tmpdir(), 'ekiden-bench-fleet-'));
  const closers: Array<{ what: string; run: () => Promise<unknown> }> = [];
  let emulator: GitHubEmulator | undefined;
  let client: Client | undefined;
  const drivers: FakeDriver[] = [];
  const workers: Array<{ id: string; worker: HostWorker; running: Promise<void> }> = [];
  const workerErrors: string[] = [];
  let webhookServer: Server | undefined;
  const poolNames = Array.from({ length: POOLS }, (_, i) => `fleet-${String.fromCharCode(97 + i)}`);
  const poolLabels = (name: string) => ['self-hosted', 'fleet', name];
  let poolsStarted = false;
  const results: Record<string, PhaseResult> = {};
  const leftovers = { fakeVmProcesses: -1, vmDirs: -1, registrations: -1, openRunners: -1 };
  let error: string | undefined;

  // Job bookkeeping from the emulator's own events (synchronous, in this process).
  const assigned = new Map<number, { at: number; runnerName: string }>();
  const completed = new Map<number, { conclusion: string | null }>();
  const onJob = (e: JobEvent) => {
    if (e.action === 'in_progress' && !assigned.has(e.job.id)) assigned.set(e.job.id, { at: performance.now(), runnerName: e.job.runner_name ?? '' });
    if (e.action === 'completed') completed.set(e.job.id, { conclusion: e.job.conclusion });
  };

  const startWorker = (id: string, worker: HostWorker) => {
    const running = worker.run().catch((err: unknown) => {
      workerErrors.push(`${id}: ${(err as Error).message}`);
    });
    workers.push({ id, worker, running });
  };
  const stopWorkers = async (which: (id: string) => boolean) => {
    const stopping = workers.filter((w) => which(w.id));
    for (const w of stopping) w.worker.shutdown();
    await within(60_000, 'worker shutdown', () => Promise.all(stopping.map((w) => w.running)));
    for (const w of stopping) workers.splice(workers.indexOf(w), 1);
  };

  /** Open RunnerWorkflows: workflow id → run token. */
  const openRunners = async (c: Client) => {
    const open = new Map<string, string>();
    for await (const wf of c.workflow.list({ query: "WorkflowType = 'RunnerWorkflow' AND ExecutionStatus = 'Running'" })) open.set(wf.workflowId, runToken(wf.runId));
    return open;
  };
  /** Cancels the open RunnerWorkflows `which` selects and waits until they have closed. */
  const cancelRunners = async (c: Client, which: (workflowId: string) => boolean, timeoutMs: number) => {
    const deadline = Date.now() + timeoutMs;
    const cancelled = new Set<string>();
    for (;;) {
      const open = [...(await openRunners(c)).keys()].filter(which);
      if (open.length === 0) return;
      if (Date.now() > deadline) throw new Error(`${open.length} runner(s) still open after ${timeoutMs / 1000} s: ${open.slice(0, 5).join(', ')}`);
      for (const id of open.filter((x) => !cancelled.has(x))) {
        cancelled.add(id);
        await c.workflow.getHandle(id).cancel().catch(() => {});
      }
      await sleep(250);
    }
  };

  /** Total history events of every run of these workflow ids (continue-as-new included). */
  const historyTotal = async (c: Client, ids: string[]) => {
    let total = 0;
    for (const id of ids) {
      for await (const wf of c.workflow.list({ query: `WorkflowId = '${id}'` })) {
        // A running execution's visibility record may lag; describe reads its mutable state.
        if (wf.status.name === 'RUNNING') total += (await c.workflow.getHandle(id, wf.runId).describe()).historyLength;
        else total += wf.historyLength;
      }
    }
    return total;
  };

  /** Waits until `n` runners named `prefix…` are online and idle at the emulator. */
  const waitWarm = async (emu: GitHubEmulator, prefix: string, n: number, timeoutMs = 90_000) => {
    const deadline = performance.now() + timeoutMs;
    const warm = () => emu.runners().filter((r) => r.name.startsWith(prefix) && r.status === 'online' && !r.busy).length;
    while (warm() < n) {
      if (performance.now() > deadline) throw new Error(`only ${warm()}/${n} warm runner(s) ${prefix}* after ${timeoutMs / 1000} s`);
      await pause(100);
    }
  };

  try {
    // ── shared infrastructure ──
    const cli = await locateTemporalCli({ explicitPath: process.env.TEMPORAL_CLI_PATH, searchPath: process.env.PATH, cacheDir: defaultCacheDir(process.env), allowGoInstall: true });
    if (!cli) throw new Error('no Temporal CLI; set TEMPORAL_CLI_PATH');
    const server = await startDevServer({ cliPath: cli, ui: false, logFile: join(dir, 'temporal.log') });
    closers.push({ what: 'dev server', run: () => server.stop() });
    const emu = new GitHubEmulator({ tokens: [TOKEN], repos: [REPO] });
    emulator = emu;
    const { url } = await emu.start();
    closers.push({ what: 'emulator', run: () => emu.stop() });
    emu.on('job', onJob);
    const imageDir = join(dir, 'image');
    await installStandinRunner({ dir: join(imageDir, 'actions-runner') });
    const scope = { kind: 'repo' as const, owner: 'bench', repo: 'fleet' };
    const registry = new RunnerRegistry(createOctokit({ apiUrl: url, auth: { kind: 'token', token: TOKEN }, scope, writeSpacingMs: 0 }), scope);
    const native = await NativeConnection.connect({ address: server.address });
    closers.push({ what: 'native connection', run: () => native.close() });
    const connection = await Connection.connect({ address: server.address });
    closers.push({ what: 'client connection', run: () => connection.close() });
    const c = new Client({ connection });
    client = c;
    say(`dev server pid ${server.pid} at ${server.address}; emulator ${url}; temp dir ${dir}`);

    const newDriver = async (id: string) => {
      const d = new FakeDriver({ root: join(dir, 'hosts', id, 'vms'), images: { [IMAGE]: imageDir } });
      await d.pullImage({ image: IMAGE }); // warm image cache: no lifecycle pays a first pull
      drivers.push(d);
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
        ...(o.fleet ? { client: c, capacity: SLOTS, labels: ['fleet'] } : {}),
      });

    /** Queues JOBS jobs at RATE, waits until they are done and their runners closed, measures. */
    const runPhase = async (p: PhaseSpec): Promise<PhaseResult> => {
      // Idle cost first: warm runners, no jobs.
      const idleStart = cpuSnapshot(server.pid);
      await pause(IDLE_MS);
      const idleEnd = cpuSnapshot(server.pid);
      const idleS = (idleEnd.at - idleStart.at) / 1000;
      const poolBefore = await historyTotal(c, p.poolIds);
      const hostBefore = await historyTotal(c, p.hostIds);
      const jobs: JobRecord[] = [];
      const idleSamples: number[] = [];
      const idleNow = () =>
        emu.runners().filter((r) => p.runnerPrefixes.some((x) => r.name.startsWith(x)) && r.status === 'online' && !r.busy).length;
      const sampler = setInterval(() => idleSamples.push(idleNow()), 500);
      sampler.unref(); // an interruption leaves through pause(); this must not keep the process up
      const before = cpuSnapshot(server.pid);
      for (let i = 0; i < JOBS; i++) {
        const wait = before.at + (i * 1000) / RATE - performance.now();
        if (wait > 0) await pause(wait);
        const queuedAt = performance.now();
        const job = emu.queueJob({ repo: REPO, name: `${p.name}-${i + 1}`, labels: p.labelsFor(i), steps: [{ name: 'hello', run: JOB_RUN }] });
        jobs.push({ id: job.id, queuedAt });
        p.onQueued?.(i);
        if ((i + 1) % Math.max(1, Math.round(JOBS / 4)) === 0 || i + 1 === JOBS) {
          const a = jobs.filter((j) => assigned.has(j.id)).length;
          const d = jobs.filter((j) => completed.has(j.id)).length;
          say(`${p.name}: ${i + 1}/${JOBS} queued, ${a} assigned, ${d} done, ${guestPidsUnder(dir).length} fake VM(s) running`);
        }
      }
      // Drain: every job done, and none of the runners that ran one still open.
      const deadline = performance.now() + DRAIN_TIMEOUT_MS;
      let after: CpuSnapshot | undefined;
      while (performance.now() < deadline) {
        if (jobs.every((j) => completed.has(j.id))) {
          const open = new Set((await openRunners(c)).values());
          const running = jobs.filter((j) => {
            const token = parseRunnerName(assigned.get(j.id)?.runnerName ?? '')?.token;
            return token !== undefined && open.has(token);
          });
          if (running.length === 0) {
            after = cpuSnapshot(server.pid);
            break;
          }
        }
        await pause(250);
      }
      clearInterval(sampler);
      if (!after) {
        after = cpuSnapshot(server.pid);
        say(`${p.name}: drain timed out after ${DRAIN_TIMEOUT_MS / 1000} s; ${jobs.filter((j) => !completed.has(j.id)).length} job(s) not completed`);
      }
      const poolAfter = await historyTotal(c, p.poolIds);
      const hostAfter = await historyTotal(c, p.hostIds);
      await pause(1_000); // visibility of the last closes

      // Lifecycles: this phase's runners that closed in the window.
      const closedInWindow: Array<{ workflowId: string; runId: string; status: string }> = [];
      let startedInWindow = 0;
      for await (const wf of c.workflow.list({ query: "WorkflowType = 'RunnerWorkflow'" })) {
        if (!p.ownsRunner(wf.workflowId)) continue;
        if (wf.startTime.getTime() >= before.wall - 50 && wf.startTime.getTime() <= after.wall) startedInWindow++;
        const closed = wf.closeTime?.getTime();
        if (closed !== undefined && closed >= before.wall && closed <= after.wall + 50) {
          closedInWindow.push({ workflowId: wf.workflowId, runId: wf.runId, status: wf.status.name });
        }
      }
      const outcomes: Record<string, number> = {};
      for (const r of closedInWindow) {
        let outcome = r.status.toLowerCase();
        if (r.status === 'COMPLETED') {
          outcome = await c.workflow
            .getHandle<typeof RunnerWorkflow>(r.workflowId, r.runId)
            .result()
            .then((x) => x.outcome, () => outcome);
        }
        outcomes[outcome] = (outcomes[outcome] ?? 0) + 1;
      }

      // History events: fetchHistory on a sample (≤ 20, spread) of the runners that served a job.
      const servedTokens = new Set(jobs.map((j) => parseRunnerName(assigned.get(j.id)?.runnerName ?? '')?.token).filter((x) => x !== undefined));
      const served = closedInWindow.filter((r) => servedTokens.has(runToken(r.runId)));
      const stride = Math.max(1, Math.floor(served.length / 20));
      const sample = served.filter((_, i) => i % stride === 0).slice(0, 20);
      const eventTypes: Record<string, number> = {};
      const activityTypes: Record<string, number> = {};
      let sampledEvents = 0;
      let retiredWithJob = 0;
      for (const r of sample) {
        const events: HistoryEvent[] = (await c.workflow.getHandle(r.workflowId, r.runId).fetchHistory()).events ?? [];
        sampledEvents += events.length;
        const scheduled = new Map<string, string>();
        let waitCancelled = false;
        for (const e of events) {
          const type = eventTypeOf(e);
          eventTypes[type] = (eventTypes[type] ?? 0) + 1;
          const name = e.activityTaskScheduledEventAttributes?.activityType?.name;
          if (name) {
            scheduled.set(String(e.eventId), name);
            activityTypes[name] = (activityTypes[name] ?? 0) + 1;
          }
          const cancel = e.activityTaskCancelRequestedEventAttributes;
          if (cancel && scheduled.get(String(cancel.scheduledEventId)) === 'awaitJobStart') waitCancelled = true;
        }
        if (waitCancelled) retiredWithJob++;
      }
      const perSample = (o: Record<string, number>) => {
        for (const k of Object.keys(o)) o[k] = r1(o[k]! / Math.max(1, sample.length))!;
      };
      perSample(eventTypes);
      perSample(activityTypes);

      // Let the phase settle (retirements of surplus runners finish), then every runner's outcome.
      stage = `${p.name} settling`;
      const settleUntil = performance.now() + SETTLE_MS;
      const idleTarget = p.poolIds.length > 0 ? MIN_IDLE * p.poolIds.length : WARM;
      while (performance.now() < settleUntil) {
        const open = [...(await openRunners(c)).keys()].filter(p.ownsRunner);
        if (open.length <= idleTarget) break;
        await pause(500);
      }
      const settledOutcomes: Record<string, number> = {};
      for await (const wf of c.workflow.list({ query: "WorkflowType = 'RunnerWorkflow'" })) {
        // Runners started in the window, and the warm ones that were open when it began.
        const startedIn = wf.startTime.getTime() >= before.wall - 50;
        const openAtStart = (wf.closeTime?.getTime() ?? Infinity) >= before.wall;
        if (!p.ownsRunner(wf.workflowId) || !(startedIn || openAtStart)) continue;
        let outcome = wf.status.name.toLowerCase();
        if (wf.status.name === 'COMPLETED') {
          outcome = await c.workflow
            .getHandle<typeof RunnerWorkflow>(wf.workflowId, wf.runId)
            .result()
            .then((x) => x.outcome, () => outcome);
        }
        settledOutcomes[outcome] = (settledOutcomes[outcome] ?? 0) + 1;
      }

      const waits = jobs.filter((j) => assigned.has(j.id)).map((j) => assigned.get(j.id)!.at - j.queuedAt);
      const lifecycles = closedInWindow.length;
      const windowMs = after.at - before.at;
      const per = (x: number | undefined, n = lifecycles) => (x === undefined || n === 0 ? NaN : x / n);
      const cpuMs = (after.process.user + after.process.system - before.process.user - before.process.system) / 1000;
      const diff = (a: number | undefined, b: number | undefined) => (a !== undefined && b !== undefined ? a - b : undefined);
      const machine = before.machine && after.machine ? (after.machine.busy - before.machine.busy) / Math.max(1, after.machine.total - before.machine.total) : NaN;
      const own = cpuMs + (diff(after.server, before.server) ?? 0) + (diff(after.reaped, before.reaped) ?? 0);
      return {
        jobs: jobs.length,
        jobsCompleted: jobs.filter((j) => completed.has(j.id)).length,
        jobsSucceeded: jobs.filter((j) => completed.get(j.id)?.conclusion === 'success').length,
        windowS: windowMs / 1000,
        lifecycles,
        lifecyclesPerMin: lifecycles / (windowMs / 60_000),
        runnerLivesPerJob: startedInWindow / jobs.length,
        assignP50Ms: pct(waits, 50),
        assignP95Ms: pct(waits, 95),
        assignMaxMs: waits.length ? Math.max(...waits) : NaN,
        coldJobs: waits.filter((w) => w > 1_000).length,
        idleRunnersAvg: idleSamples.length ? idleSamples.reduce((a, x) => a + x, 0) / idleSamples.length : NaN,
        idleRunnersMax: idleSamples.length ? Math.max(...idleSamples) : NaN,
        workerCpuMsPerLifecycle: per(cpuMs),
        workerCpuMsPerJob: per(cpuMs, jobs.length),
        serverCpuMsPerLifecycle: per(diff(after.server, before.server)),
        fakeVmCpuMsPerLifecycleLowerBound: per(diff(after.reaped, before.reaped)),
        machineBusyPct: machine * 100,
        ownBusyPct: (own / (windowMs * availableParallelism())) * 100,
        idleWorkerCpuMsPerS: (idleEnd.process.user + idleEnd.process.system - idleStart.process.user - idleStart.process.system) / 1000 / idleS,
        idleServerCpuMsPerS: (diff(idleEnd.server, idleStart.server) ?? NaN) / idleS,
        retiredWithJobPct: sample.length ? (retiredWithJob / sample.length) * 100 : NaN,
        runnerEventsPerLifecycle: sample.length ? sampledEvents / sample.length : NaN,
        runnerEventsSample: sample.length,
        poolEventsPerLifecycle: per(poolAfter - poolBefore),
        hostEventsPerLifecycle: per(hostAfter - hostBefore),
        outcomes,
        settledOutcomes,
        runnerEventTypes: eventTypes,
        runnerActivityTypes: activityTypes,
      };
    };

    // ── baseline: one host worker, direct RunnerWorkflows, no pool, no host workflow ──
    if (!values['skip-baseline']) {
      stage = 'baseline';
      const baseDriver = await newDriver(BASE_HOST);
      startWorker(BASE_HOST, await hostWorker(BASE_HOST, baseDriver, { serveShared: true, fleet: false }));
      const labels = ['self-hosted', 'bench-base'];
      let seq = 0;
      const startRunner = () =>
        c.workflow.start<typeof RunnerWorkflow>('RunnerWorkflow', {
          workflowId: runnerWorkflowId(BASE_POOL, ++seq),
          taskQueue: SHARED_TASK_QUEUE,
          args: [{ spec: { pool: BASE_POOL, host: BASE_HOST, image: IMAGE, labels, runnerGroupId: 1, runnerDir: 'actions-runner', credential: 'jit' }, timing: TIMING }],
          typedSearchAttributes: [
            { key: SA_POOL, value: BASE_POOL },
            { key: SA_HOST, value: BASE_HOST },
            { key: SA_PHASE, value: RunnerPhase.Pulling },
          ],
        });
      for (let i = 0; i < WARM; i++) await startRunner();
      await waitWarm(emu, `ekiden-${BASE_POOL}-`, WARM);
      say(`baseline: host ${BASE_HOST} with ${WARM} warm runner(s); queueing jobs`);
      const starts: Array<Promise<unknown>> = [];
      results.baseline = await runPhase({
        name: 'baseline',
        labelsFor: () => labels,
        onQueued: () => starts.push(startRunner().catch((err: unknown) => noteWarning(`baseline start: ${(err as Error).message}`))),
        ownsRunner: (id) => id.startsWith(runnerWorkflowId(BASE_POOL, '')),
        runnerPrefixes: [`ekiden-${BASE_POOL}-`],
        poolIds: [],
        hostIds: [],
      });
      await Promise.all(starts);
      // The warm runners left over end here, outside the window; then the host goes away.
      stage = 'baseline cleanup';
      await cancelRunners(c, (id) => id.startsWith(runnerWorkflowId(BASE_POOL, '')), 60_000);
      await stopWorkers((id) => id === BASE_HOST);
      say(`baseline: done in ${r1(results.baseline.windowS)} s; its worker stopped`);
    }

    // ── fleet: HOSTS host workers, webhook receiver, pools over every host ──
    stage = 'fleet';
    const hostIds = Array.from({ length: HOSTS }, (_, i) => `h${String(i + 1).padStart(2, '0')}`);
    for (const [i, id] of hostIds.entries()) {
      const driver = await newDriver(id);
      startWorker(id, await hostWorker(id, driver, { serveShared: i === 0, fleet: true }));
    }
    await within(180_000, 'host workers ready', () => Promise.all(workers.map((w) => w.worker.ready)));
    for (const id of hostIds) {
      const handle = c.workflow.getHandle(hostWorkflowId(id));
      for (;;) {
        const state = await handle.query(hostStatusQuery).then((s) => s.state, () => 'unknown');
        if (state === 'up') break;
        await pause(100);
      }
    }
    if (workerErrors.length > 0) throw new Error(`host workers failed: ${workerErrors.join('; ')}`);
    say(`fleet: ${HOSTS} host workers announced and up (only h01 serves the shared queue)`);

    const secret = randomBytes(24).toString('hex');
    webhookServer = createWebhookServer({ secret, client: c, logger: webhookLog });
    const hookUrl = `${await listenOn(webhookServer, 0)}${WEBHOOK_PATH}`;
    emu.webhooks.add({ url: hookUrl, secret });
    say(`fleet: webhook receiver at ${hookUrl}, registered with the emulator`);

    for (const name of poolNames) {
      const config: PoolConfig = {
        name,
        hosts: hostIds,
        image: IMAGE,
        labels: poolLabels(name),
        runnerGroupId: 1,
        runnerDir: 'actions-runner',
        credential: 'jit',
        size: 0,
        minIdle: MIN_IDLE,
        max: MAX,
        timing: TIMING,
      };
      await c.workflow.start<typeof PoolWorkflow>('PoolWorkflow', {
        workflowId: poolWorkflowId(name),
        taskQueue: SHARED_TASK_QUEUE,
        args: [{ config }],
        typedSearchAttributes: [{ key: SA_POOL, value: name }],
      });
      poolsStarted = true;
    }
    for (const name of poolNames) await waitWarm(emu, `ekiden-${name}-`, MIN_IDLE);
    say(`fleet: ${POOLS} pool(s) started, ${WARM} runner(s) warm; queueing jobs`);
    results.fleet = await runPhase({
      name: 'fleet',
      labelsFor: (i) => poolLabels(poolNames[i % POOLS]!),
      ownsRunner: (id) => poolNames.some((n) => id.startsWith(runnerWorkflowId(n, ''))),
      runnerPrefixes: poolNames.map((n) => `ekiden-${n}-`),
      poolIds: poolNames.map(poolWorkflowId),
      hostIds: hostIds.map(hostWorkflowId),
    });
    for (const name of poolNames) {
      const s = await c.workflow.getHandle(poolWorkflowId(name)).query(poolStatusQuery);
      say(
        `fleet: pool ${name}: started ${s.started}, completed ${s.completed}, failed ${s.failed}, runs ${s.runs}, ` +
          `now ${s.counts.starting}/${s.counts.idle}/${s.counts.busy}/${s.counts.cleaning} starting/idle/busy/cleaning, pending ${s.pendingJobs}` +
          `${s.blocked ? `, blocked: ${s.blocked}` : ''}${s.recentFailures.length ? `, last failure: ${s.recentFailures.at(-1)!.message}` : ''}`,
      );
    }
    const deliveries = emu.webhooks.deliveries();
    const failedDeliveries = deliveries.filter((d) => d.state === 'failed').length;
    say(`fleet: ${deliveries.length} webhook deliveries, ${failedDeliveries} failed, ${deliveries.filter((d) => d.attempts > 1).length} retried`);
  } catch (err) {
    if (!abort.signal.aborted) {
      error = (err as Error).message;
      console.log(`error: ${error}`);
    }
  }

  // ── teardown (also after an interruption) ──
  stage = 'cleanup';
  const step = async (what: string, ms: number, work: () => Promise<unknown>) => {
    try {
      await within(ms, what, work);
    } catch (err) {
      console.log(`${t()}  cleanup: ${what}: ${(err as Error).message}`);
    }
  };
  const c = client;
  if (c) {
    if (poolsStarted) {
      console.log(`${t()}  cleanup: cancelling ${POOLS} pool(s); their runners deregister and delete their VMs`);
      await step('pools', 120_000, () =>
        Promise.all(
          poolNames.map(async (name) => {
            const handle = c.workflow.getHandle(poolWorkflowId(name));
            await handle.cancel().catch((err: unknown) => {
              if (!(err instanceof WorkflowNotFoundError)) throw err;
            });
            await handle.result().catch(() => {});
          }),
        ),
      );
    }
    await step('remaining runners', 90_000, () => cancelRunners(c, () => true, 90_000));
    await step('leftover count', 30_000, async () => {
      for (let i = 0; i < 40 && guestPidsUnder(dir).length > 0; i++) await sleep(250);
      leftovers.fakeVmProcesses = guestPidsUnder(dir).length;
      let vms = 0;
      for (const d of drivers) vms += (await d.list()).length;
      leftovers.vmDirs = vms;
      leftovers.registrations = emulator?.runners().length ?? -1;
      leftovers.openRunners = (await openRunners(c)).size;
    });
  }
  console.log(
    `${t()}  leftovers: ${leftovers.fakeVmProcesses} fake VM process(es), ${leftovers.vmDirs} VM dir(s), ` +
      `${leftovers.registrations} emulator runner registration(s), ${leftovers.openRunners} open RunnerWorkflow(s)`,
  );
  await step('workers', 60_000, () => stopWorkers(() => true));
  if (webhookServer) await step('webhook receiver', 10_000, () => closeServer(webhookServer!));
  for (const closer of closers.reverse()) await step(closer.what, 30_000, closer.run);
  const strays = guestPidsUnder(dir);
  for (const pid of strays) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone already
    }
  }
  if (strays.length > 0) console.log(`${t()}  cleanup: killed ${strays.length} stray fake VM process(es) by pid`);
  rmSync(dir, { recursive: true, force: true });
  console.error = consoleError;

  // ── report ──
  const b = results.baseline;
  const f = results.fleet;
  const row = (label: string, get: (r: PhaseResult) => number, digits: (n: number) => number | null, unit = '') => {
    const fv = f ? digits(get(f)) : null;
    const bv = b ? digits(get(b)) : null;
    const ratioText = f && b ? fmt(ratio(get(f), get(b))) : 'n/a';
    console.log(`  ${label.padEnd(44)} ${fmt(fv, unit).padStart(12)} ${fmt(bv, unit).padStart(12)} ${('×' + ratioText).padStart(8)}`);
  };
  if (f || b) report();
  function report() {
    console.log('');
    console.log(`  ${'figure'.padEnd(44)} ${'fleet'.padStart(12)} ${'baseline'.padStart(12)} ${'ratio'.padStart(8)}`);
    row('jobs succeeded', (r) => r.jobsSucceeded, r0);
    row('window (first queued → last runner closed)', (r) => r.windowS, r1, ' s');
    row('runner lifecycles closed in window', (r) => r.lifecycles, r0);
    row('lifecycles per minute', (r) => r.lifecyclesPerMin, r1);
    row('runner lives started per job', (r) => r.runnerLivesPerJob, r2);
    row('queue → assigned p50', (r) => r.assignP50Ms, r0, ' ms');
    row('queue → assigned p95', (r) => r.assignP95Ms, r0, ' ms');
    row('queue → assigned max', (r) => r.assignMaxMs, r0, ' ms');
    row('jobs waiting > 1 s (no warm runner)', (r) => r.coldJobs, r0);
    row(`idle runners in window, avg (target ${WARM})`, (r) => r.idleRunnersAvg, r2);
    row('idle runners in window, max', (r) => r.idleRunnersMax, r0);
    row('bench-process CPU per lifecycle', (r) => r.workerCpuMsPerLifecycle, r0, ' ms');
    row('bench-process CPU per job', (r) => r.workerCpuMsPerJob, r0, ' ms');
    row('dev-server CPU per lifecycle', (r) => r.serverCpuMsPerLifecycle, r0, ' ms');
    row('fake-VM CPU per lifecycle (reaped, ≥)', (r) => r.fakeVmCpuMsPerLifecycleLowerBound, r0, ' ms');
    row(`machine busy, all processes (${availableParallelism()} cores = 100 %)`, (r) => r.machineBusyPct, r1, ' %');
    row('  of which this run (bench + server + VMs ≥)', (r) => r.ownBusyPct, r1, ' %');
    row('idle (warm, no jobs): bench-process CPU per s', (r) => r.idleWorkerCpuMsPerS, r0, ' ms');
    row('idle (warm, no jobs): dev-server CPU per s', (r) => r.idleServerCpuMsPerS, r0, ' ms');
    row('runners retired while their job landed', (r) => r.retiredWithJobPct, r0, ' %');
    row('RunnerWorkflow events per lifecycle', (r) => r.runnerEventsPerLifecycle, r1);
    row('PoolWorkflow events per lifecycle', (r) => r.poolEventsPerLifecycle, r1);
    row('HostWorkflow events per lifecycle', (r) => r.hostEventsPerLifecycle, r1);
    row('all events per lifecycle', (r) => r.runnerEventsPerLifecycle + (r.poolEventsPerLifecycle || 0) + (r.hostEventsPerLifecycle || 0), r1);
    for (const [name, r] of Object.entries(results)) {
      console.log(`  ${name} outcomes in window: ${JSON.stringify(r.outcomes)}; every runner of the phase once settled: ${JSON.stringify(r.settledOutcomes)}`);
      console.log(`  ${name} runner activities (avg of ${r.runnerEventsSample}): ${Object.entries(r.runnerActivityTypes).map(([k, v]) => `${k} ${v}`).join(', ')}`);
      const top = Object.entries(r.runnerEventTypes).sort((x, y) => y[1] - x[1]);
      console.log(`  ${name} runner events by type (avg): ${top.map(([k, v]) => `${k} ${v}`).join(', ')}`);
    }
    console.log('  (bench-process CPU covers every worker, the emulator, the webhook receiver and the bench; fake VMs are separate processes)');
  }
  console.log(`  host-worker start-up lines: ${workerInfoLines}; SDK "no workflows registered" notices: ${sdkNotices}; worker errors: ${workerErrors.length ? workerErrors.join('; ') : 'none'}`);
  const topWarnings = [...warnings.entries()].sort((x, y) => y[1] - x[1]).slice(0, 10);
  console.log(`  warnings: ${topWarnings.length === 0 ? 'none' : ''}`);
  for (const [msg, n] of topWarnings) console.log(`    ${String(n).padStart(4)} × ${msg}`);

  const json: Record<string, unknown> = {
    hosts: HOSTS,
    slots_per_host: SLOTS,
    pools: POOLS,
    min_idle_per_pool: MIN_IDLE,
    max_per_pool: MAX,
    rate_jobs_per_s: RATE,
    job_seconds: JOB_S,
    jobs_per_phase: JOBS,
  };
  const snake = (k: string) => k.replace(/[A-Z]/g, (m) => `_${m.toLowerCase()}`);
  const numeric = (r: PhaseResult, k: keyof PhaseResult) => {
    const v = r[k];
    return typeof v === 'number' ? (Number.isInteger(v) ? v : r1(v)) : v;
  };
  for (const [name, r] of Object.entries(results)) {
    for (const k of Object.keys(r) as Array<keyof PhaseResult>) {
      if (k === 'runnerEventTypes' || k === 'runnerActivityTypes') continue;
      json[`${name}_${snake(k)}`] = numeric(r, k);
    }
  }
  if (f && b) {
    json.ratio_lifecycles_per_min = ratio(f.lifecyclesPerMin, b.lifecyclesPerMin);
    json.ratio_assign_p50 = ratio(f.assignP50Ms, b.assignP50Ms);
    json.ratio_assign_p95 = ratio(f.assignP95Ms, b.assignP95Ms);
    json.ratio_worker_cpu_per_lifecycle = ratio(f.workerCpuMsPerLifecycle, b.workerCpuMsPerLifecycle);
    json.ratio_worker_cpu_per_job = ratio(f.workerCpuMsPerJob, b.workerCpuMsPerJob);
    json.ratio_server_cpu_per_lifecycle = ratio(f.serverCpuMsPerLifecycle, b.serverCpuMsPerLifecycle);
    json.ratio_runner_events_per_lifecycle = ratio(f.runnerEventsPerLifecycle, b.runnerEventsPerLifecycle);
    json.ratio_all_events_per_lifecycle = ratio(f.runnerEventsPerLifecycle + f.poolEventsPerLifecycle + f.hostEventsPerLifecycle, b.runnerEventsPerLifecycle);
  }
  json.leftover_fake_vm_processes = leftovers.fakeVmProcesses;
  json.leftover_vm_dirs = leftovers.vmDirs;
  json.leftover_registrations = leftovers.registrations;
  json.leftover_open_runners = leftovers.openRunners;
  json.warnings = [...warnings.values()].reduce((a, x) => a + x, 0);
  json.interrupted = abort.signal.aborted;
  if (error) json.error = error;
  console.log(JSON.stringify(json));
  const clean = leftovers.fakeVmProcesses === 0 && leftovers.vmDirs === 0 && leftovers.registrations === 0 && leftovers.openRunners === 0;
  process.exitCode = error || abort.signal.aborted || !clean ? 1 : 0;
}

/** An event's type, from the one `…EventAttributes` field it carries (activityTaskScheduled, …). */
function eventTypeOf(e: HistoryEvent): string {
  for (const [k, v] of Object.entries(e)) {
    if (k.endsWith('EventAttributes') && v) return k.slice(0, -'EventAttributes'.length);
  }
  return String(e.eventType ?? 'unknown');
}

await main();
