/**
 * Upgrading the control plane while runners are mid-job, with Worker Versioning on the real
 * dev server: `ekiden control` of release N (build id = the package version) runs a pool whose
 * two runners hold jobs; `ekiden control` of release N+1 — whose RunnerWorkflow has a new first
 * step (test/support/next-release) — starts beside it and `ekiden deployment promote` makes it
 * current. The old runners finish their jobs on N, every new runner runs N+1, the pool and the
 * host move to N+1, no workflow task fails anywhere, and N reports drained before it stops.
 */
import { bundleWorkflowCode, Worker } from '@temporalio/worker';
import type { WorkflowHandle } from '@temporalio/client';
import type { temporal } from '@temporalio/proto';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { resolvePoolTuning } from '../../core/defaults.js';
import { fleetScheduleId, hostWorkflowId, poolWorkflowId } from '../../core/names.js';
import { SA_POOL } from '../../core/search-attributes.js';
import { poolStatusQuery } from '../../workflows/api.js';
import type { PoolWorkflow } from '../../workflows/pool.js';
import { ekidenVersion } from '../../workers/host-worker.js';
import { killAll, runEkiden, startEkiden, type EkidenChild } from '../cli/ekiden-process.js';
import { BUNDLE, createHarness, REPO, ROOT, TOKEN, temporalSkipReason, waitUntil, type Harness } from '../support/harness.js';

type History = temporal.api.history.v1.IHistory;

const skip = temporalSkipReason();

/** The build id each workflow task of `history` was completed by. */
function taskBuilds(history: History): string[] {
  return (history.events ?? [])
    .map((e) => e.workflowTaskCompletedEventAttributes)
    .filter((a): a is NonNullable<typeof a> => Boolean(a))
    .map((a) => a.deploymentVersion?.buildId ?? a.workerVersion?.buildId ?? '(none)');
}

function firstCommand(history: History): string {
  const e = (history.events ?? []).find((x) => x.timerStartedEventAttributes || x.activityTaskScheduledEventAttributes || x.startChildWorkflowExecutionInitiatedEventAttributes);
  return e?.timerStartedEventAttributes ? 'timer' : e?.activityTaskScheduledEventAttributes ? `activity ${e.activityTaskScheduledEventAttributes.activityType?.name}` : '?';
}

describe.skipIf(skip)('upgrading the control plane with runners mid-job (Worker Versioning)', () => {
  let h: Harness;
  let pool: WorkflowHandle<typeof PoolWorkflow> | undefined;
  let oldFile: string;
  let newFile: string;
  let nextBundle: string;
  const N = ekidenVersion();
  const N1 = `${N}-next`;
  const env = { EKIDEN_TEST_GITHUB_TOKEN: TOKEN };

  beforeAll(async () => {
    h = await createHarness('upgrade');
    const { code } = await bundleWorkflowCode({
      workflowsPath: join(ROOT, 'test', 'support', 'next-release', 'workflows.ts'),
      logger: { log() {}, trace() {}, debug() {}, info() {}, warn() {}, error() {} },
    });
    nextBundle = join(h.dir, 'next-release-bundle.js');
    writeFileSync(nextBundle, code);
    const fleet = (control: Record<string, unknown>, testing?: Record<string, unknown>) =>
      JSON.stringify({
        temporal: { address: inject('temporalAddress'), namespace: 'default', taskQueue: h.taskQueue },
        github: { apiUrl: h.emulatorUrl, scope: `repo:${REPO}`, auth: { tokenEnv: 'EKIDEN_TEST_GITHUB_TOKEN' }, writeSpacingMs: 0 },
        control: { interval: '1d', ...control },
        hosts: [{ id: h.hostId, dataDir: join(h.dir, 'host'), driver: h.driverSettings, capacity: 3 }],
        ...(testing ? { testing } : {}),
      });
    oldFile = join(h.dir, 'fleet-n.json');
    newFile = join(h.dir, 'fleet-n1.json');
    // Release N: versioning is the fleet form's default, its build id the package version.
    writeFileSync(oldFile, fleet({}));
    writeFileSync(newFile, fleet({ buildId: N1 }, { workflowBundle: nextBundle }));
  });
  afterAll(async () => {
    await pool?.cancel().catch(() => {});
    await pool?.result().catch(() => {});
    await h?.client.schedule.getHandle(fleetScheduleId(h.taskQueue)).delete().catch(() => {});
    await killAll();
    await h?.close();
  });

  const versionOf = async (workflowId: string) => {
    const d = await h.client.workflow.getHandle(workflowId).describe();
    const info = d.raw.workflowExecutionInfo?.versioningInfo;
    return { build: info?.deploymentVersion?.buildId ?? undefined, behavior: info?.behavior };
  };
  const deploymentStatus = async () => {
    const r = await runEkiden(['deployment', 'status', '--config', newFile, '--json'], 30_000, { env });
    expect(r.code, r.stderr).toBe(0);
    return JSON.parse(r.stdout) as { current?: string; ramping?: { buildId: string; percentage: number }; versions: Array<{ buildId: string; pinned: number; pollers: number }> };
  };

  it('old runners finish on N, new ones run N+1, the pool and host move, nothing fails or leaks', async () => {
    let old: EkidenChild | undefined = startEkiden(['control', '--config', oldFile], { env });
    await waitUntil(() => old!.err(), (e) => e.includes('"control plane running"'), 60_000, 'control plane N up');
    expect(old.err()).toContain(`"buildId":"${N}"`);
    // The first version of a deployment makes itself current (the Runtime's log lines come in batches).
    await waitUntil(() => old!.err(), (e) => e.includes('made this version current'), 20_000, 'N made current');
    await h.startWorker({ serveShared: false, fleet: { capacity: 3 } });

    const name = `up-${Date.now().toString(36).slice(-5)}`;
    pool = await h.client.workflow.start<typeof PoolWorkflow>('PoolWorkflow', {
      workflowId: poolWorkflowId(name),
      taskQueue: h.taskQueue,
      args: [{ config: h.poolConfig(name, { size: 2, max: 3 }), tuning: resolvePoolTuning({ hostRetryMs: 500 }) }],
      typedSearchAttributes: [{ key: SA_POOL, value: name }],
    });
    await waitUntil(() => pool!.query(poolStatusQuery), (s) => s.counts.idle === 2, 90_000, 'two idle runners on N');
    // Two jobs that hold until the test lets them go (the fake guests are processes on this machine).
    const gate = join(h.dir, 'release-jobs');
    const hold = { name: 'hold', run: `while [ ! -f ${gate} ]; do sleep 0.2; done; echo released` };
    const jobs = [0, 1].map(() => h.emulator.queueJob({ repo: REPO, labels: ['self-hosted', `lbl-${name}`], steps: [hold] }));
    const busy = await waitUntil(() => pool!.query(poolStatusQuery), (s) => s.counts.busy === 2, 60_000, 'both runners mid-job');
    const oldRunners = busy.runners.filter((r) => r.phase === 'busy').map((r) => r.workflowId);
    for (const id of oldRunners) expect(await versionOf(id)).toEqual({ build: N, behavior: 1 /* PINNED */ });
    expect((await versionOf(pool.workflowId)).build).toBe(N);

    // Release N+1 starts beside N: it joins the deployment but takes nothing until promoted.
    const next = startEkiden(['control', '--config', newFile], { env });
    await waitUntil(() => next.err(), (e) => e.includes('"control plane running"'), 60_000, 'control plane N+1 up');
    await waitUntil(() => next.err(), (e) => e.includes(`version ${N} is current`), 20_000, 'N+1 says N is current');
    const before = await waitUntil(deploymentStatus, (s) => s.versions.some((v) => v.buildId === N1 && v.pollers > 0), 20_000, 'N+1 polling');
    expect(before.current).toBe(N);
    expect(before.versions.find((v) => v.buildId === N)!.pinned).toBeGreaterThanOrEqual(2);

    // A canary first: a share of new work to N+1, then back to N alone (nothing new starts meanwhile: both runners are busy).
    const ramp = await runEkiden(['deployment', 'ramp', N1, '--percent', '25', '--config', newFile], 30_000, { env });
    expect(ramp.code, ramp.stderr).toBe(0);
    expect(ramp.stdout).toContain(`25% of new work to ${N1}, the rest to ${N}`);
    expect(await deploymentStatus()).toMatchObject({ current: N, ramping: { buildId: N1, percentage: 25 } });
    const refused = await runEkiden(['deployment', 'ramp', N, '--percent', '10', '--config', newFile], 30_000, { env });
    expect(refused.code).toBe(1);
    expect(refused.stderr.trim()).toBe(`ekiden: deployment ${h.taskQueue}: ${N} is the current version; ramp another one`);
    const stopped = await runEkiden(['deployment', 'ramp', '--stop', '--config', newFile], 30_000, { env });
    expect(stopped.code, stopped.stderr).toBe(0);
    expect((await deploymentStatus()).ramping).toBeUndefined();
    expect((await runEkiden(['deployment', 'ramp', N1, '--percent', '5', '--config', newFile], 30_000, { env })).code).toBe(0);

    // Promoting the ramping version makes it current and ends the ramp.
    const promoted = await runEkiden(['deployment', 'promote', N1, '--config', newFile], 30_000, { env });
    expect(promoted.code, promoted.stderr).toBe(0);
    expect(promoted.stdout).toContain(`${N1} is current (was ${N})`);
    expect((await deploymentStatus()).ramping).toBeUndefined();
    // Old runners are still mid-job, on N; the jobs go on.
    writeFileSync(gate, '');
    for (const job of jobs) {
      const done = await h.emulator.waitForJob(job.id, (j) => j.status === 'completed', 90_000);
      expect(done).toMatchObject({ conclusion: 'success' });
    }
    for (const id of oldRunners) {
      await h.client.workflow.getHandle(id).result();
      expect(await versionOf(id)).toEqual({ build: N, behavior: 1 });
    }

    // Their replacements run N+1, with its new first step; the pool and the host moved to N+1.
    const after = await waitUntil(
      () => pool!.query(poolStatusQuery),
      (s) => s.counts.idle === 2 && s.runners.every((r) => !oldRunners.includes(r.workflowId)),
      90_000,
      'two new idle runners',
    );
    const newRunners = after.runners.map((r) => r.workflowId);
    for (const id of newRunners) expect(await versionOf(id)).toEqual({ build: N1, behavior: 1 });
    expect(await versionOf(pool.workflowId)).toEqual({ build: N1, behavior: 2 /* AUTO_UPGRADE */ });
    await waitUntil(() => versionOf(hostWorkflowId(h.hostId)), (v) => v.build === N1, 30_000, 'host workflow on N+1');

    // A job after the upgrade runs on an N+1 runner.
    const later = h.emulator.queueJob({ repo: REPO, labels: ['self-hosted', `lbl-${name}`], steps: [{ name: 'hi', run: 'echo hi' }] });
    const laterDone = await h.emulator.waitForJob(later.id, (j) => j.status === 'completed', 90_000);
    expect(laterDone).toMatchObject({ conclusion: 'success' });
    expect(after.runners.map((r) => r.runnerName)).toContain(laterDone.runner_name);

    // Histories: each old runner ran on N only and never saw the new step; each new one starts with it.
    const oldHistory = await h.client.workflow.getHandle(oldRunners[0]!).fetchHistory();
    for (const id of oldRunners) {
      const history = await h.client.workflow.getHandle(id).fetchHistory();
      expect(new Set(taskBuilds(history))).toEqual(new Set([N]));
      expect(firstCommand(history)).not.toBe('timer');
    }
    for (const id of newRunners) {
      const history = await h.client.workflow.getHandle(id).fetchHistory();
      expect(new Set(taskBuilds(history))).toEqual(new Set([N1]));
      expect(firstCommand(history)).toBe('timer');
    }
    // The change is real: N+1's code cannot replay an N runner (only pinning kept those alive); N's can.
    await Worker.runReplayHistory({ workflowBundle: { codePath: BUNDLE } }, oldHistory, oldRunners[0]);
    await expect(Worker.runReplayHistory({ workflowBundle: { codePath: nextBundle } }, oldHistory, oldRunners[0])).rejects.toThrow(/[Nn]ondetermin/);

    // No workflow task failed anywhere on the fleet's queue.
    const failed: string[] = [];
    for await (const wf of h.client.workflow.list({ query: `TaskQueue = "${h.taskQueue}"` })) {
      const history = await h.client.workflow.getHandle(wf.workflowId, wf.runId).fetchHistory();
      if ((history.events ?? []).some((e) => e.workflowTaskFailedEventAttributes)) failed.push(wf.workflowId);
    }
    expect(failed).toEqual([]);

    // N holds nothing any more: drained, its worker may stop; N+1 carries on alone.
    const drained = await waitUntil(deploymentStatus, (s) => s.versions.find((v) => v.buildId === N)?.pinned === 0, 30_000, 'N drained');
    expect(drained.current).toBe(N1);
    const text = await runEkiden(['deployment', 'status', '--config', newFile], 30_000, { env });
    expect(text.stdout).toMatch(new RegExp(`${N.replace(/\./g, '\\.')}\\s.*drained: its workers may stop`));
    old.proc.kill('SIGTERM');
    expect((await old.exited).code).toBe(0);
    old = undefined;

    await pool.cancel();
    await pool.result().catch(() => {});
    pool = undefined;
    expect(await h.driver.list()).toEqual([]);
    await waitUntil(() => h.emulator.runners().filter((r) => r.name.startsWith(`ekiden-${name}-`)), (r) => r.length === 0, 20_000, 'registrations gone');
    expect(existsSync(nextBundle)).toBe(true);
  });
});
