/**
 * `npm run bench:vm [-- --runs N]`: getting a runner going in a real QEMU VM, Ekiden against
 * the bash loop an operator would write, with the same guest image (`qemu:debian-bookworm-runner`,
 * images/ensure-image.sh) and the same QEMU arguments.
 *
 * - Baseline (bench/vm-baseline.sh): JIT config (curl) → qemu-img overlay → qemu-system-x86_64
 *   -daemonize → poll `ssh` → launch the runner detached over ssh. Timed by the script itself.
 * - Ekiden: a RunnerWorkflow on a real Temporal dev server with the QEMU driver and a host
 *   worker configured as `ekiden up` configures it, timed from the workflow's start to its
 *   launchRunner completion (the moment the runner's phase becomes `idle`).
 * - Recycle, as a pool of size 1 does it: the Ekiden runner takes a job; from the job's
 *   completion (the GitHub emulator's event) until the next RunnerWorkflow, started as soon as
 *   the first one has finished, has its runner launched. Compared with the baseline's boot.
 *
 * The runs are interleaved (baseline and Ekiden alternate which goes first) and never overlap:
 * one VM at a time. Also reported: when each runner came online at the emulator. Everything
 * lives in one temp directory that is removed at the end and on SIGINT/SIGTERM, after killing
 * every QEMU process started under it. Last line: JSON.
 */
import { Client, Connection, type WorkflowHandle } from '@temporalio/client';
import { runnerStatusQuery } from '../workflows/api.js';
import { resolveRunnerTiming } from '../core/defaults.js';
import type { temporal } from '@temporalio/proto';
import { NativeConnection } from '@temporalio/worker';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { RunnerStatus, RunnerTiming } from '../core/runner-spec.js';
import { QemuDriver } from '../drivers/qemu.js';
import { DEFAULT_QEMU_IMAGE, defaultQemuImagesDir, loadQemuImage, type QemuImage } from '../drivers/qemu-image.js';
import { GitHubEmulator } from '../emulator/github/server.js';
import { createOctokit, scopeWebUrl } from '../github/client.js';
import { RunnerRegistry } from '../github/runners.js';
import { generateSshKeyPair } from '../ssh/keys.js';
import { defaultCacheDir, freePort, locateTemporalCli, startDevServer, type DevServer } from '../temporal/dev-server.js';
import { createHostWorker, type HostWorker } from '../workers/host-worker.js';
import { installRuntime } from '../workers/logging.js';
import { WORKFLOW_BUNDLE } from '../workers/main.js';
import type { RunnerWorkflow } from '../workflows/runner.js';

const REPO = 'bench/vm';
const TOKEN = 'ghp_bench_vm_token';
const LABELS = ['self-hosted', 'bench-vm'];
const BASELINE_LABELS = ['self-hosted', 'bench-vm-baseline'];
const RUNNER_DIR = 'actions-runner';
const HOST_ID = 'bench-vm';
/** As `ekiden up` runs QEMU hosts: the guest is polled every 2 s, heartbeats within 10 s. */
const POLL_MS = 2_000;
const TIMING: RunnerTiming = resolveRunnerTiming({ heartbeatTimeoutMs: 10_000 });
/** Per step of one run: a TCG boot takes tens of seconds on a busy 2-core machine. */
const STEP_TIMEOUT_MS = 6 * 60_000;

const median = (xs: number[]) => {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
};
const round = (n: number) => (Number.isFinite(n) ? Math.round(n) : null);
const eventMs = (e: temporal.api.history.v1.IHistoryEvent | undefined) => {
  const ts = e?.eventTime;
  return Number(ts?.seconds ?? 0) * 1000 + Math.floor((ts?.nanos ?? 0) / 1e6);
};
const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

function baselineScript(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  for (const candidate of [join(here, 'vm-baseline.sh'), resolve(here, '..', '..', 'bench', 'vm-baseline.sh')]) {
    if (existsSync(candidate)) return candidate;
  }
  throw new Error('bench/vm-baseline.sh not found');
}

function missingTools(): string[] {
  const onPath = (bin: string) => (process.env.PATH ?? '').split(delimiter).some((d) => d && existsSync(join(d, bin)));
  return ['qemu-system-x86_64', 'qemu-img', 'ssh', 'curl', 'bash'].filter((b) => !onPath(b));
}

/** Pids of QEMU processes whose command line mentions `dir`. */
function qemuPidsUnder(dir: string): number[] {
  const pids: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const argv = readFileSync(`/proc/${name}/cmdline`, 'utf8').split('\0');
      if (/(^|\/)qemu-system-/.test(argv[0] ?? '') && argv.some((a) => a.includes(dir))) pids.push(Number(name));
    } catch {
      // gone, or not ours to read
    }
  }
  return pids;
}

async function killQemuUnder(dir: string): Promise<void> {
  for (const pid of qemuPidsUnder(dir)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone already
    }
  }
  for (let i = 0; i < 100 && qemuPidsUnder(dir).length > 0; i++) await pause(50);
}

/** Times (ms) of activity completions, by activity type (first completion of each). */
function activityTimes(events: temporal.api.history.v1.IHistoryEvent[]) {
  const scheduled = new Map<string, { name: string; at: number }>();
  const done: Record<string, { scheduledAt: number; completedAt: number }> = {};
  for (const e of events) {
    const s = e.activityTaskScheduledEventAttributes;
    if (s) scheduled.set(String(e.eventId), { name: s.activityType?.name ?? '', at: eventMs(e) });
    const c = e.activityTaskCompletedEventAttributes;
    if (c) {
      const sch = scheduled.get(String(c.scheduledEventId));
      if (sch && !done[sch.name]) done[sch.name] = { scheduledAt: sch.at, completedAt: eventMs(e) };
    }
  }
  return done;
}

interface EkidenRun {
  /** Client's start call → launchRunner completed (phase idle). */
  idleMs: number;
  /** Client's start call → the runner online at the emulator. */
  onlineMs?: number;
  /** Start of bootVm → its completion (driver start + SSH ready). */
  bootVmMs: number;
  /** cloneVm and launchRunner, scheduled → completed. */
  cloneMs: number;
  launchMs: number;
  /** Epoch ms of the launchRunner completion. */
  launchedAt: number;
  runnerName: string;
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { runs: { type: 'string', default: '5' } } });
  const runs = Number(values.runs);
  if (!Number.isInteger(runs) || runs < 1) throw new Error(`--runs must be a whole number ≥ 1, not "${values.runs}"`);
  const missing = missingTools();
  if (missing.length) throw new Error(`not installed: ${missing.join(', ')} (apt-get install qemu-system-x86 qemu-utils openssh-client curl)`);
  const imagesDir = process.env.EKIDEN_QEMU_IMAGES_DIR ?? defaultQemuImagesDir();
  const image = await loadQemuImage(imagesDir, DEFAULT_QEMU_IMAGE);
  if (!image) throw new Error(`no guest image ${DEFAULT_QEMU_IMAGE} in ${imagesDir}: build it with images/ensure-image.sh (as root)`);

  installRuntime({ level: 'WARN', sink: () => {} });
  const dir = mkdtempSync(join(tmpdir(), 'ekiden-bench-vm-'));

  // ---- teardown, also on SIGINT/SIGTERM ----
  let server: DevServer | undefined;
  let worker: HostWorker | undefined;
  let workerRun: Promise<void> | undefined;
  let emulator: GitHubEmulator | undefined;
  const connections: Array<{ close(): Promise<void> }> = [];
  const baselineChildren = new Set<ChildProcess>();
  let tornDown: Promise<void> | undefined;
  const teardown = () =>
    (tornDown ??= (async () => {
      for (const child of baselineChildren) child.kill('SIGTERM');
      if (worker) {
        worker.shutdown();
        await Promise.race([workerRun?.catch(() => {}), pause(15_000)]);
      }
      for (const c of connections) await c.close().catch(() => {});
      await emulator?.stop().catch(() => {});
      await server?.stop().catch(() => {});
      // Whatever is still running under dir (a VM the worker was booting, a baseline VM) goes now.
      await killQemuUnder(dir);
      rmSync(dir, { recursive: true, force: true });
    })());
  const onSignal = (sig: NodeJS.Signals) => {
    if (tornDown) {
      // Second signal: no more waiting.
      void killQemuUnder(dir).finally(() => {
        rmSync(dir, { recursive: true, force: true });
        process.exit(130);
      });
      return;
    }
    console.error(`\n${sig}: stopping; removing every VM and ${dir}`);
    void teardown().finally(() => process.exit(130));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  try {
    const cli = await locateTemporalCli({ explicitPath: process.env.TEMPORAL_CLI_PATH, searchPath: process.env.PATH, cacheDir: defaultCacheDir(process.env), allowGoInstall: true });
    if (!cli) throw new Error('no Temporal CLI; set TEMPORAL_CLI_PATH');
    server = await startDevServer({ cliPath: cli, ui: false, logFile: join(dir, 'temporal.log') });
    emulator = new GitHubEmulator({
      tokens: [TOKEN],
      repos: [REPO],
      // QEMU guests reach the host's loopback through the user-network gateway.
      runnerBaseUrl: (own) => own.replace('127.0.0.1', '10.0.2.2'),
    });
    const em = emulator;
    const { url } = await em.start();
    const onlineAt = new Map<string, number>();
    const jobCompletedAt = new Map<number, number>();
    em.on('runner', (e) => {
      if (e.action === 'online' && !onlineAt.has(e.runner.name)) onlineAt.set(e.runner.name, Date.now());
    });
    em.on('job', (e) => {
      if (e.action === 'completed') jobCompletedAt.set(e.job.id, Date.now());
    });
    const waitOnline = async (name: string, since: number): Promise<number | undefined> => {
      const deadline = Date.now() + 120_000;
      while (Date.now() < deadline) {
        const at = onlineAt.get(name);
        if (at !== undefined) return at - since;
        await pause(50);
      }
      return undefined;
    };

    const scope = { kind: 'repo' as const, owner: 'bench', repo: 'vm' };
    const registry = new RunnerRegistry(createOctokit({ apiUrl: url, auth: { kind: 'token', token: TOKEN }, scope, writeSpacingMs: 0 }), scope);
    const driver = new QemuDriver({ root: join(dir, 'vms'), imagesDir, maxRunning: 2 });
    const accel = await driver.resolvedAccel({ kernel: realpathSync(image.kernel), initrd: realpathSync(image.initrd) });
    console.log(`guest image ${image.dir}, accelerator ${accel}, ${runs} run(s) of each`);

    const native = await NativeConnection.connect({ address: server.address });
    connections.push(native);
    const connection = await Connection.connect({ address: server.address });
    connections.push(connection);
    const client = new Client({ connection });
    worker = await createHostWorker({
      connection: native,
      namespace: 'default',
      hostId: HOST_ID,
      driver,
      github: registry,
      githubRunnerUrl: scopeWebUrl(url, scope),
      dataDir: join(dir, 'host'),
      workflowBundlePath: WORKFLOW_BUNDLE,
      pollIntervalMs: POLL_MS,
    });
    workerRun = worker.run();
    const spec = { pool: 'benchvm', host: HOST_ID, image: DEFAULT_QEMU_IMAGE, labels: LABELS, runnerGroupId: 1, runnerDir: RUNNER_DIR, credential: 'jit' as const };

    // ---- (a) baseline ----
    const baselineRun = async (i: number) => {
      const name = `ekiden-base-${i}-${randomBytes(3).toString('hex')}`;
      const vmDir = join(dir, 'baseline', name);
      await mkdir(vmDir, { recursive: true, mode: 0o700 });
      const host = generateSshKeyPair();
      const clientKey = generateSshKeyPair();
      await writeFile(join(vmDir, 'host_ed25519'), host.privateKey, { mode: 0o600 });
      await writeFile(join(vmDir, 'host_ed25519.pub'), `${host.publicKey}\n`);
      await writeFile(join(vmDir, 'client_ed25519'), clientKey.privateKey, { mode: 0o600 });
      await writeFile(join(vmDir, 'client_ed25519.pub'), `${clientKey.publicKey}\n`);
      await writeFile(join(vmDir, 'hostname'), name);
      const r = await runBaseline({ image, accel, vmDir, name, url, waitOnline, children: baselineChildren });
      const runner = await registry.findRunnerByName(name);
      if (runner) await registry.removeRunner(runner.id);
      return r;
    };

    // ---- (b) Ekiden ----
    let seq = 0;
    const startRunner = async () => {
      const t0 = Date.now();
      const handle = await client.workflow.start<typeof RunnerWorkflow>('RunnerWorkflow', {
        workflowId: `runner/benchvm/${++seq}`,
        taskQueue: 'ekiden',
        args: [{ spec, timing: TIMING }],
      });
      return { handle, t0 };
    };
    const untilIdle = async (handle: WorkflowHandle<typeof RunnerWorkflow>, t0: number): Promise<EkidenRun> => {
      const deadline = Date.now() + STEP_TIMEOUT_MS;
      let status: RunnerStatus | undefined;
      for (;;) {
        status = await handle.query(runnerStatusQuery).catch(() => undefined);
        if (status?.phase === 'idle' || status?.phase === 'busy') break;
        if (status?.phase === 'failed' || status?.phase === 'done') {
          await handle.result();
          throw new Error(`${handle.workflowId} ended before its runner was launched`);
        }
        if (Date.now() > deadline) throw new Error(`${handle.workflowId}: no idle runner within ${STEP_TIMEOUT_MS} ms (phase ${status?.phase})`);
        await pause(200);
      }
      const steps = activityTimes((await handle.fetchHistory()).events ?? []);
      const launched = steps.launchRunner;
      if (!launched || !steps.bootVm || !steps.cloneVm) throw new Error(`${handle.workflowId}: no launchRunner completion in its history`);
      return {
        idleMs: launched.completedAt - t0,
        onlineMs: await waitOnline(status.runnerName, t0),
        bootVmMs: steps.bootVm.completedAt - steps.bootVm.scheduledAt,
        cloneMs: steps.cloneVm.completedAt - steps.cloneVm.scheduledAt,
        launchMs: launched.completedAt - launched.scheduledAt,
        launchedAt: launched.completedAt,
        runnerName: status.runnerName,
      };
    };
    /** One runner up, a job through it, then (as a size-1 pool) the next runner up. */
    const ekidenRun = async () => {
      const first = await startRunner();
      const up = await untilIdle(first.handle, first.t0);
      const job = em.queueJob({ repo: REPO, labels: ['bench-vm'], steps: [{ run: 'true' }] });
      await em.waitForJob(job.id, (j) => j.status === 'completed', STEP_TIMEOUT_MS);
      const completedAt = jobCompletedAt.get(job.id) ?? Date.now();
      const result = await first.handle.result();
      const finishedMs = Date.now() - completedAt;
      if (result.outcome !== 'completed') throw new Error(`${first.handle.workflowId}: outcome ${result.outcome}`);
      const destroy = activityTimes((await first.handle.fetchHistory()).events ?? []).destroyVm;
      const destroyMs = destroy ? destroy.completedAt - destroy.scheduledAt : NaN;
      const next = await startRunner();
      const nextUp = await untilIdle(next.handle, next.t0);
      const recycleMs = nextUp.launchedAt - completedAt;
      // The second runner is not needed any more: cancelling it is the pool's drain path.
      await next.handle.cancel();
      await next.handle.result().catch(() => {});
      const left = await driver.list();
      if (left.length) throw new Error(`VMs left behind by Ekiden: ${left.map((v) => v.name).join(', ')}`);
      return { up, nextUp, recycleMs, finishedMs, destroyMs };
    };

    const base: Array<Awaited<ReturnType<typeof runBaseline>>> = [];
    const ek: Array<Awaited<ReturnType<typeof ekidenRun>>> = [];
    for (let i = 0; i < runs; i++) {
      const order = i % 2 === 0 ? (['a', 'b'] as const) : (['b', 'a'] as const);
      for (const which of order) {
        if (which === 'a') base.push(await baselineRun(i));
        else ek.push(await ekidenRun());
      }
      const a = base[i]!;
      const b = ek[i]!;
      console.log(
        `run ${i + 1}/${runs}: baseline ${a.launchMs} ms (ssh ${a.sshMs}, online ${a.onlineMs ?? '–'})` +
          ` | Ekiden ${b.up.idleMs} ms (boot ${b.up.bootVmMs}, online ${b.up.onlineMs ?? '–'})` +
          ` | recycle ${b.recycleMs} ms (first runner gone after ${b.finishedMs}, destroyVm ${b.destroyMs}; next one up in ${b.nextUp.idleMs})`,
      );
    }

    const baseMs = base.map((r) => r.launchMs);
    const baseSsh = base.map((r) => r.sshMs);
    const ekMs = ek.map((r) => r.up.idleMs);
    const recycle = ek.map((r) => r.recycleMs);
    const online = (xs: Array<number | undefined>) => xs.filter((x): x is number => x !== undefined);
    const result = {
      runs,
      accel,
      baseline_p50_ms: round(median(baseMs)),
      ekiden_p50_ms: round(median(ekMs)),
      ratio: +(median(ekMs) / median(baseMs)).toFixed(2),
      added_p50_ms: round(median(ekMs.map((v, i) => v - baseMs[i]!))),
      recycle_p50_ms: round(median(recycle)),
      raw_boot_p50_ms: round(median(baseSsh)),
      recycle_minus_boot_ms: round(median(recycle) - median(baseSsh)),
      recycle_minus_baseline_ms: round(median(recycle) - median(baseMs)),
      baseline_online_p50_ms: round(median(online(base.map((r) => r.onlineMs)))),
      ekiden_online_p50_ms: round(median(online(ek.map((r) => r.up.onlineMs)))),
      ekiden_boot_vm_p50_ms: round(median(ek.map((r) => r.up.bootVmMs))),
      ekiden_clone_p50_ms: round(median(ek.map((r) => r.up.cloneMs))),
      ekiden_launch_p50_ms: round(median(ek.map((r) => r.up.launchMs))),
      recycle_teardown_p50_ms: round(median(ek.map((r) => r.finishedMs))),
      ekiden_destroy_vm_p50_ms: round(median(ek.map((r) => r.destroyMs))),
      ekiden_next_runner_p50_ms: round(median(ek.map((r) => r.nextUp.idleMs))),
      baseline_ms: baseMs,
      ekiden_ms: ekMs,
      recycle_ms: recycle,
    };
    await teardown();
    const leftovers = [...qemuPidsUnder(dir).map((p) => `qemu pid ${p}`), ...(existsSync(dir) ? [dir] : [])];
    if (leftovers.length) throw new Error(`left behind: ${leftovers.join(', ')}`);

    console.log(`baseline p50 ${result.baseline_p50_ms} ms (SSH ready ${result.raw_boot_p50_ms} ms), Ekiden p50 ${result.ekiden_p50_ms} ms: ×${result.ratio}, +${result.added_p50_ms} ms`);
    console.log(`recycle p50 ${result.recycle_p50_ms} ms (job completed → next runner launched): raw boot +${result.recycle_minus_boot_ms} ms, baseline +${result.recycle_minus_baseline_ms} ms`);
    console.log(`runner online at GitHub p50: baseline ${result.baseline_online_p50_ms} ms, Ekiden ${result.ekiden_online_p50_ms} ms; nothing left behind`);
    console.log(JSON.stringify(result));
  } catch (err) {
    await teardown();
    throw err;
  }
}

/** One run of bench/vm-baseline.sh: its own timings, plus when its runner came online. */
async function runBaseline(args: {
  image: QemuImage;
  accel: 'kvm' | 'tcg';
  vmDir: string;
  name: string;
  url: string;
  waitOnline: (name: string, since: number) => Promise<number | undefined>;
  children: Set<ChildProcess>;
}): Promise<{ sshMs: number; launchMs: number; onlineMs?: number }> {
  const { image, accel, vmDir, name } = args;
  const machineId = randomBytes(16).toString('hex');
  const uuid = `${machineId.slice(0, 8)}-${machineId.slice(8, 12)}-${machineId.slice(12, 16)}-${machineId.slice(16, 20)}-${machineId.slice(20)}`;
  let append = `${image.append} systemd.machine_id=${machineId}`;
  if (accel === 'tcg') append += ' mitigations=off';
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    VM_DIR: vmDir,
    BASE_DISK: realpathSync(image.disk),
    KERNEL: realpathSync(image.kernel),
    INITRD: realpathSync(image.initrd),
    APPEND: append,
    ACCEL: accel,
    CPU_MODEL: accel === 'kvm' ? 'host' : 'max',
    SMP: '2',
    MEMORY_MB: '2048',
    VM_NAME: name,
    VM_UUID: uuid,
    MAC: `52:54:00:${[...randomBytes(3)].map((b) => b.toString(16).padStart(2, '0')).join(':')}`,
    SSH_PORT: String(await freePort()),
    SSH_USER: image.username,
    RUNNER_DIR,
    GITHUB_API: args.url,
    GITHUB_TOKEN: TOKEN,
    GITHUB_REPO: REPO,
    RUNNER_NAME: name,
    RUNNER_LABELS: JSON.stringify(BASELINE_LABELS),
  };
  const started = Date.now();
  const child = spawn('bash', [baselineScript()], { env, stdio: ['pipe', 'pipe', 'pipe'] });
  args.children.add(child);
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
  const exited = new Promise<number | null>((res) => child.once('exit', (c) => res(c)));
  let result: { sshMs: number; launchMs: number; onlineMs?: number };
  let code: number | null;
  try {
    const line = await new Promise<string>((res, rej) => {
      let out = '';
      const timer = setTimeout(() => rej(new Error(`baseline ${name}: no runner within ${STEP_TIMEOUT_MS} ms`)), STEP_TIMEOUT_MS);
      child.stdout!.on('data', (d: Buffer) => {
        out += d.toString();
        const nl = out.indexOf('\n');
        if (nl >= 0) {
          clearTimeout(timer);
          res(out.slice(0, nl));
        }
      });
      void exited.then((code) => {
        clearTimeout(timer);
        rej(new Error(`baseline ${name} exited with ${code}: ${stderr.trim().split('\n').slice(-3).join(' | ')}`));
      });
    });
    const times = JSON.parse(line) as { ssh_ms: number; launch_ms: number };
    result = { sshMs: times.ssh_ms, launchMs: times.launch_ms, onlineMs: await args.waitOnline(name, started) };
  } finally {
    // Closing its stdin tells the script to kill the VM and delete its directory.
    child.stdin!.end();
    code = await exited;
    args.children.delete(child);
  }
  if (existsSync(vmDir)) throw new Error(`baseline ${name} (exit ${code}) left ${vmDir} behind`);
  return result;
}

await main();
