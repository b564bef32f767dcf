/**
 * The README's "Operating a fleet" story, end to end, as an operator types it: one fleet file
 * (YAML) with two hosts and one pool spanning both; `ekiden control --config fleet.yaml` for
 * the control plane and `ekiden worker --config fleet.yaml --host ID` on each host; `ekiden pool create --config`, `pool scale`, `pool drain` while a job runs,
 * `runners`, `pool delete --wait`; `status` / `hosts` / `runners --json` to watch it. Fake
 * driver (each host its own VM root) and the harness's GitHub emulator; every `ekiden` call is
 * a real process (bin/ekiden.js). At the end nothing is left: no VMs, no registrations, no
 * host leases. A bad argument exits 2 with one line.
 */
import { execa } from 'execa';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { HostRow, PoolRow, RunnerRow } from '../../cli/fleet.js';
import { fleetScheduleId, hostWorkflowId, poolWorkflowId } from '../../core/names.js';
import { FakeDriver } from '../../drivers/fake.js';
import { retireHostSignal, type PoolStatus } from '../../workflows/api.js';
import { createHarness, IMAGE, REPO, ROOT, TOKEN, temporalSkipReason, waitUntil, type Harness } from '../support/harness.js';

const skip = temporalSkipReason();
const BIN = join(ROOT, 'bin', 'ekiden.js');
/** The variable the fleet file names for the GitHub token; only the workers get it. */
const TOKEN_ENV = 'EKIDEN_OPFLOW_GITHUB_TOKEN';

const suffix = Math.random().toString(36).slice(2, 7);
const POOL = `opflow-${suffix}`;
const LABEL = `opflow-${suffix}`;
const HOSTS = [`opflow-a-${suffix}`, `opflow-b-${suffix}`] as const;
const CAPACITY = 2;

interface Run {
  code: number | undefined;
  out: string;
  err: string;
}

interface StatusJson {
  pools: PoolRow[];
  hosts: HostRow[];
  runners: RunnerRow[];
}

/** The environment without any Temporal settings: the flags and the file decide. */
function baseEnv(): Record<string, string | undefined> {
  const env: Record<string, string | undefined> = { ...process.env };
  for (const k of ['TEMPORAL_ADDRESS', 'TEMPORAL_NAMESPACE', 'TEMPORAL_PROFILE', 'TEMPORAL_CONFIG_FILE', 'TEMPORAL_UI_URL', TOKEN_ENV]) delete env[k];
  return env;
}

/** `ekiden ARGS…` as its own process from the repository root, as an operator runs it. */
async function ekiden(args: string[], timeoutMs = 120_000): Promise<Run> {
  const r = await execa(process.execPath, [BIN, ...args], { cwd: ROOT, env: baseEnv(), extendEnv: false, reject: false, timeout: timeoutMs });
  return { code: r.exitCode, out: String(r.stdout), err: String(r.stderr) };
}

/** `ekiden ARGS… --json`, which must succeed; its parsed stdout. */
async function ekidenJson<T>(args: string[]): Promise<T> {
  const r = await ekiden([...args, '--json']);
  if (r.code !== 0) throw new Error(`ekiden ${args.join(' ')} exited ${r.code}: ${r.err}`);
  return JSON.parse(r.out) as T;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls an `ekiden … --json` command (a process each time: a short pause between calls spares the two cores). */
function pollCli<T>(args: string[], accept: (v: T) => boolean, timeoutMs: number, what: string): Promise<T> {
  let first = true;
  return waitUntil(
    async () => {
      if (!first) await sleep(750);
      first = false;
      return ekidenJson<T>(args);
    },
    accept,
    timeoutMs,
    what,
  );
}

const ourPool = (s: StatusJson): PoolStatus | undefined => s.pools.find((p) => p.name === POOL)?.status;

describe.skipIf(skip)('operating a fleet as the README tells it', () => {
  let h: Harness;
  let fleetFile: string;
  let address: string;
  const hostDir = (id: string) => join(h.dir, id);
  const vmRoot = (id: string) => join(hostDir(id), 'vms');
  const workers = new Map<string, ChildProcess>();
  const workerLog: string[] = [];
  const timings: Array<[string, number]> = [];
  const hostsEnded: string[] = [];
  let lap = Date.now();
  const mark = (what: string) => {
    timings.push([what, Date.now() - lap]);
    lap = Date.now();
  };

  beforeAll(async () => {
    h = await createHarness('opflow');
    address = inject('temporalAddress');
    const settings = h.driverSettings;
    if (settings.kind !== 'fake') throw new Error('the fake driver is expected here');
    const q = (s: string) => JSON.stringify(s);
    const lines = [
      '# written by test/fleet/operator-flow.test.ts',
      `temporal: { address: ${q(address)}, namespace: default, taskQueue: ${q(`ekiden-opflow-${suffix}`)} }`,
      `github: { apiUrl: ${q(h.emulatorUrl)}, scope: ${q(`repo:${REPO}`)}, auth: { tokenEnv: ${TOKEN_ENV} }, writeSpacingMs: 0 }`,
      'hosts:',
    ];
    for (const id of HOSTS) {
      mkdirSync(hostDir(id), { recursive: true });
      lines.push(
        `  - id: ${id}`,
        `    dataDir: ${q(join(hostDir(id), 'data'))}`,
        `    capacity: ${CAPACITY}`,
        '    labels: [linux, fake]',
        `    driver: { kind: fake, root: ${q(vmRoot(id))}, images: { ${q(IMAGE)}: ${q(settings.images[IMAGE]!)} } }`,
      );
    }
    lines.push(
      'pools:',
      `  - name: ${POOL}`,
      `    hosts: [${HOSTS.join(', ')}]`,
      `    image: ${q(IMAGE)}`,
      `    labels: [self-hosted, ${LABEL}]`,
      '    size: 1                  # warm floor',
      '    max: 4                   # both hosts full',
      '    timing: { idleTimeoutMs: 600000 }',
    );
    fleetFile = join(h.dir, 'fleet.yaml');
    writeFileSync(fleetFile, `${lines.join('\n')}\n`);
  });

  afterAll(async () => {
    const client = h?.client;
    if (client) {
      // Only after a failure is anything still running: cancel the pool so its runners clean up.
      const pool = client.workflow.getHandle(poolWorkflowId(POOL));
      try {
        if ((await pool.describe()).status.name === 'RUNNING') {
          await pool.cancel();
          await Promise.race([pool.result().catch(() => {}), sleep(60_000)]);
        }
      } catch {
        // never created
      }
      for await (const info of client.workflow.list({ query: `WorkflowType = 'RunnerWorkflow' AND ExecutionStatus = 'Running' AND EkidenPool = '${POOL}'` })) {
        await client.workflow.getHandle(info.workflowId, info.runId).terminate('operator-flow test over').catch(() => {});
      }
      await pool.terminate('operator-flow test over').catch(() => {});
      // The hosts leave the fleet while their workers still serve the queue, so the HostWorkflows end.
      // (A host busy with a long step ends only after it: terminated then, so nothing stays open.)
      await Promise.all(
        HOSTS.map(async (id) => {
          const host = client.workflow.getHandle(hostWorkflowId(id));
          try {
            await host.signal(retireHostSignal);
            await Promise.race([host.result(), sleep(10_000).then(() => Promise.reject(new Error('not retired')))]);
            hostsEnded.push(`${id} retired`);
          } catch {
            await host.terminate('operator-flow test over').catch(() => {});
            hostsEnded.push(`${id} terminated`);
          }
        }),
      );
    }
    await Promise.all(
      [...workers.values()].map(async (proc) => {
        if (proc.exitCode !== null || proc.signalCode !== null) return;
        const exited = new Promise((r) => proc.once('exit', r));
        proc.kill('SIGTERM');
        if (await Promise.race([exited.then(() => true), sleep(20_000).then(() => false)])) return;
        proc.kill('SIGKILL');
        await exited;
      }),
    );
    // Fake VMs are processes: never leave one behind, whatever happened.
    if (h) {
      for (const id of HOSTS) {
        const driver = new FakeDriver({ root: vmRoot(id), images: {} });
        for (const vm of await driver.list().catch(() => [])) {
          await driver.stop({ name: vm.name, timeoutMs: 1_000 }).catch(() => {});
          await driver.delete({ name: vm.name }).catch(() => {});
        }
      }
    }
    await client?.schedule.getHandle(fleetScheduleId(`ekiden-opflow-${suffix}`)).delete().catch(() => {});
    if (timings.length) console.info(`operator-flow steps (ms): ${timings.map(([w, ms]) => `${w} ${ms}`).join(', ')}; hosts: ${hostsEnded.join(', ')}`);
    await h?.close();
  });

  function startWorker(id: string): ChildProcess {
    const args = id === 'control' ? ['control', '--config', fleetFile] : ['worker', '--config', fleetFile, '--host', id];
    const proc = spawn(process.execPath, [BIN, ...args], {
      cwd: ROOT,
      env: { ...baseEnv(), [TOKEN_ENV]: TOKEN },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    proc.stderr!.setEncoding('utf8').on('data', (d: string) => workerLog.push(...d.split('\n').filter(Boolean).map((l) => `[${id}] ${l}`)));
    workers.set(id, proc);
    return proc;
  }

  it('runs the whole operator story and leaves nothing behind', { timeout: 900_000 }, async () => {
    lap = Date.now();
    const diagnostics = () => `worker log tail:\n${workerLog.slice(-40).join('\n')}`;

    // 1. The control plane, and one worker per host, from the same file.
    startWorker('control');
    for (const id of HOSTS) startWorker(id);
    const hostsUp = await pollCli<HostRow[]>(
      ['hosts', '--address', address],
      (rows) => HOSTS.every((id) => rows.find((r) => r.id === id)?.status?.state === 'up'),
      180_000,
      'both hosts up',
    ).catch((err: Error) => {
      throw new Error(`${err.message}\n${diagnostics()}`);
    });
    for (const id of HOSTS) {
      const row = hostsUp.find((r) => r.id === id)!;
      expect(row.workflowId).toBe(hostWorkflowId(id));
      expect(row.status).toMatchObject({ state: 'up', capacity: CAPACITY, leases: [] });
      expect(row.status!.announcement).toMatchObject({ id, driver: 'fake', capacity: CAPACITY, labels: ['linux', 'fake'] });
    }
    for (const [id, proc] of workers) expect(proc.exitCode, `worker ${id} exited early\n${diagnostics()}`).toBeNull();
    mark('workers up');

    // 2. Every pool of the file.
    const created = await ekiden(['pool', 'create', '--config', fleetFile]);
    expect(created, created.err).toMatchObject({ code: 0, err: '' });
    expect(created.out.trim().split('\n')).toEqual([
      `pool ${POOL}: created ${poolWorkflowId(POOL)} on task queue ekiden-opflow-${suffix}: size 1, min-idle 0, max 4 on ${HOSTS.join(', ')}`,
    ]);
    // Creating it twice is refused with one line, and changes nothing.
    const again = await ekiden(['pool', 'create', '--config', fleetFile, POOL]);
    expect(again.code).toBe(1);
    expect(again.err.trim().split('\n')).toEqual([`ekiden: pool ${POOL} already exists; use \`ekiden pool scale\``]);
    mark('pool create');

    // 3. Scale out: applied at once; three idle runners spread over both hosts, each within its capacity.
    const scaled = await ekiden(['pool', 'scale', POOL, '--size', '3', '--config', fleetFile, '--json']);
    expect(scaled.code, scaled.err).toBe(0);
    const scaledStatus = JSON.parse(scaled.out) as PoolStatus;
    expect(scaledStatus).toMatchObject({ pool: POOL, target: 3, draining: false, config: { size: 3, minIdle: 0, max: 4 } });
    // Values the pool rejects (above its max) change nothing: exit 1, one line.
    const rejected = await ekiden(['pool', 'scale', POOL, '--size', '5', '--config', fleetFile]);
    expect(rejected.code).toBe(1);
    expect(rejected.out).toBe('');
    expect(rejected.err.trim().split('\n')).toEqual([`ekiden: pool ${POOL}: rejected: size: 5 is above max 4; raise max too`]);
    const warm = await pollCli<StatusJson>(
      ['status', '--config', fleetFile],
      (s) => ourPool(s)?.counts.idle === 3 && ourPool(s)!.runners.length === 3,
      300_000,
      'three idle runners',
    ).catch((err: Error) => {
      throw new Error(`${err.message}\n${diagnostics()}`);
    });
    const warmPool = ourPool(warm)!;
    expect(warmPool).toMatchObject({ target: 3, config: { size: 3, minIdle: 0, max: 4 }, counts: { starting: 0, idle: 3, busy: 0, cleaning: 0 }, failed: 0 });
    expect(warmPool.blocked).toBeUndefined();
    const perHost = (hostOf: string[]) => HOSTS.map((id) => hostOf.filter((x) => x === id).length);
    const spread = perHost(warmPool.runners.map((r) => r.host));
    expect(spread.every((n) => n >= 1 && n <= CAPACITY), `runners per host: ${spread.join(', ')}`).toBe(true);
    expect(spread.reduce((a, b) => a + b)).toBe(3);
    // The hosts hold one lease per runner of the pool.
    for (const id of HOSTS) {
      const leases = warm.hosts.find((r) => r.id === id)?.status?.leases ?? [];
      expect(leases.map((l) => l.workflowId).sort()).toEqual(warmPool.runners.filter((r) => r.host === id).map((r) => r.workflowId).sort());
    }
    // Three registrations on GitHub, with the pool's labels.
    const registrations = () => h.emulator.runners().filter((r) => r.name.startsWith(`ekiden-${POOL}-`));
    expect(registrations()).toHaveLength(3);
    // Each host's driver root holds its own runners' VMs.
    for (const [i, id] of HOSTS.entries()) {
      expect(await new FakeDriver({ root: vmRoot(id), images: {} }).list(), id).toHaveLength(spread[i]!);
    }
    // `ekiden runners` shows them too (visibility catches up with the search attributes).
    const listed = await pollCli<RunnerRow[]>(
      ['runners', '--pool', POOL, '--config', fleetFile],
      (rows) => rows.length === 3 && rows.every((r) => r.phase === 'idle'),
      60_000,
      'three idle runners listed',
    );
    expect(listed.map((r) => r.workflowId).sort()).toEqual(warmPool.runners.map((r) => r.workflowId).sort());
    expect(perHost(listed.map((r) => r.host ?? '?'))).toEqual(spread);
    for (const r of listed) expect(r.url).toBe(`http://127.0.0.1:8233/namespaces/default/workflows/${encodeURIComponent(r.workflowId)}`);
    const startedBeforeJob = warmPool.started;
    mark('scale to 3 idle');

    // 4. A job lands on one runner; drain while it runs: it finishes, nothing new starts.
    const job = h.emulator.queueJob({ repo: REPO, labels: ['self-hosted', LABEL], steps: [{ name: 'x', run: 'sleep 12; echo ok' }] });
    const busy = await pollCli<StatusJson>(['status', '--config', fleetFile], (s) => ourPool(s)?.counts.busy === 1, 120_000, 'a busy runner');
    expect(ourPool(busy)!.started).toBe(startedBeforeJob);
    const drained = await ekiden(['pool', 'drain', POOL, '--config', fleetFile, '--json']);
    expect(drained.code, drained.err).toBe(0);
    const drainStatus = JSON.parse(drained.out) as PoolStatus;
    expect(drainStatus).toMatchObject({ pool: POOL, draining: true, target: 0 });
    expect(drainStatus.counts.busy, 'the job still runs when the drain is applied').toBe(1);
    const startedAtDrain = drainStatus.started;
    expect(startedAtDrain).toBe(startedBeforeJob);
    mark('job busy + drain');

    const done = await h.emulator.waitForJob(job.id, (j) => j.status === 'completed', 180_000);
    expect(done).toMatchObject({ status: 'completed', conclusion: 'success', failure_reason: null });
    expect(done.steps.map((s) => s.conclusion)).toEqual(['success']);
    expect(done.runner_name).toMatch(new RegExp(`^ekiden-${POOL}-`));
    const empty = await pollCli<StatusJson>(['status', '--config', fleetFile], (s) => ourPool(s)?.runners.length === 0, 180_000, 'every runner gone');
    expect(ourPool(empty)).toMatchObject({
      draining: true,
      target: 0,
      counts: { starting: 0, idle: 0, busy: 0, cleaning: 0 },
      started: startedAtDrain,
      completed: startedAtDrain,
      failed: 0,
    });
    mark('job done, runners gone');

    // 5. Nothing listed for the pool; delete it and wait for the end.
    await pollCli<RunnerRow[]>(['runners', '--pool', POOL, '--config', fleetFile], (rows) => rows.length === 0, 60_000, 'no runners listed');
    // Still draining after a while: no runner was started behind our back.
    expect(ourPool(await ekidenJson<StatusJson>(['status', '--config', fleetFile]))).toMatchObject({ started: startedAtDrain, runners: [] });
    const deleted = await ekiden(['pool', 'delete', POOL, '--wait', '--config', fleetFile]);
    expect(deleted.code, deleted.err).toBe(0);
    expect(deleted.err).toBe('');
    expect(deleted.out.trim()).toMatch(new RegExp(`^pool ${POOL}: deleted \\(${poolWorkflowId(POOL)} cancelled after \\S+\\); its runners cleaned up$`));
    mark('pool delete --wait');

    // 6. Nothing left: VMs, registrations, leases, the pool itself.
    for (const id of HOSTS) expect(await new FakeDriver({ root: vmRoot(id), images: {} }).list(), id).toEqual([]);
    expect(h.emulator.runners()).toEqual([]);
    const hostsAfter = await pollCli<HostRow[]>(
      ['hosts', '--address', address],
      (rows) => HOSTS.every((id) => rows.find((r) => r.id === id)?.status?.leases.length === 0),
      60_000,
      'no host leases',
    );
    for (const id of HOSTS) expect(hostsAfter.find((r) => r.id === id)?.status).toMatchObject({ state: 'up', leases: [] });
    const finalStatus = await pollCli<StatusJson>(['status', '--config', fleetFile], (s) => !s.pools.some((p) => p.name === POOL), 60_000, 'pool gone from status');
    expect(finalStatus.runners.filter((r) => r.pool === POOL)).toEqual([]);
    const again2 = await ekiden(['pool', 'drain', POOL, '--config', fleetFile]);
    expect(again2.code).toBe(1);
    expect(again2.err.trim().split('\n')).toHaveLength(1);
    mark('nothing left');

    // 7. A bad argument: exit 2, one line, before anything is contacted.
    const bad = await ekiden(['pool', 'scale', POOL, '--size', '-3', '--config', fleetFile]);
    expect(bad.code).toBe(2);
    expect(bad.out).toBe('');
    expect(bad.err.trim().split('\n')).toEqual(['ekiden: --size: "-3" is not a whole number from 0 to 1000 (runners); write e.g. 2']);
    for (const [id, proc] of workers) expect(proc.exitCode, `worker ${id} exited early`).toBeNull();
    mark('bad argument');
  });
});
