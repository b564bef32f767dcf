/**
 * The control plane apart from the hosts, with real processes: `ekiden control` runs the
 * workflows and the fleet's activities, `ekiden worker --host` of a fleet file runs only its
 * host's queue. Killing the host worker (SIGKILL) is not a control-plane event: the pool keeps
 * answering; killing the control plane leaves the VM alone and a new one picks up where it was.
 * Fleet-wide work happens on the fleet schedule: one round removes the orphan GitHub
 * registration once and collects each up host's image cache (the host reports it), and no
 * HostWorkflow calls GitHub any more.
 */
import type { WorkflowHandle } from '@temporalio/client';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { resolvePoolTuning } from '../../core/defaults.js';
import { fleetScheduleId, hostTaskQueue, hostWorkflowId, poolWorkflowId, runnerName, runToken } from '../../core/names.js';
import { SA_POOL } from '../../core/search-attributes.js';
import { createJit } from '../../emulator/github/testing.js';
import { ImageCache } from '../../host/image-cache.js';
import { ensureFleetSchedule, FLEET_ROUND_WORKFLOW } from '../../temporal/fleet-schedule.js';
import { hostStatusQuery, poolStatusQuery, type FleetRoundResult } from '../../workflows/api.js';
import type { PoolWorkflow } from '../../workflows/pool.js';
import { controlLines } from '../../cli/status.js';
import { recordFixture } from '../support/fixtures.js';
import { killAll, runEkiden, startEkiden, type EkidenChild } from '../cli/ekiden-process.js';
import { createHarness, REPO, TOKEN, temporalSkipReason, waitUntil, type Harness } from '../support/harness.js';

const skip = temporalSkipReason();
const DAY = 24 * 3_600_000;

describe.skipIf(skip)('control plane apart from the hosts', () => {
  let h: Harness;
  let file: string;
  let pool: WorkflowHandle<typeof PoolWorkflow> | undefined;
  const env = { EKIDEN_TEST_GITHUB_TOKEN: TOKEN };

  beforeAll(async () => {
    h = await createHarness('control');
    file = join(h.dir, 'fleet.json');
    writeFileSync(
      file,
      JSON.stringify({
        temporal: { address: inject('temporalAddress'), namespace: 'default', taskQueue: h.taskQueue },
        github: { apiUrl: h.emulatorUrl, scope: `repo:${REPO}`, auth: { tokenEnv: 'EKIDEN_TEST_GITHUB_TOKEN' }, writeSpacingMs: 0 },
        // A round a day, paused before the test triggers the one it checks: no scheduled one joins it.
        control: { interval: '1d' },
        hosts: [{ id: h.hostId, dataDir: join(h.dir, 'host'), driver: h.driverSettings, capacity: 2, pollIntervalMs: 200, shutdownGraceMs: 1000 }],
      }),
    );
  });
  afterAll(async () => {
    await pool?.cancel().catch(() => {});
    await pool?.result().catch(() => {});
    await h?.client.schedule.getHandle(fleetScheduleId(h.taskQueue)).delete().catch(() => {});
    await killAll();
    await h?.close();
  });

  const pollers = async (taskQueue: string, type: 1 | 2) =>
    (
      await h.client.workflowService.describeTaskQueue({ namespace: 'default', taskQueue: { name: taskQueue }, taskQueueType: type })
    ).pollers?.map((p) => p.identity ?? '') ?? [];
  const startControl = () => startEkiden(['control', '--config', file], { env });
  const startHost = () => startEkiden(['worker', '--config', file, '--host', h.hostId], { env });
  const kill = async (c: EkidenChild) => {
    c.proc.kill('SIGKILL');
    await c.exited;
  };

  it('host workers serve only their host; the pool outlives a killed host worker and a killed control plane', async () => {
    let control = startControl();
    await waitUntil(() => control.err(), (e) => e.includes('"control plane running"'), 60_000, 'control plane up');
    let host = startHost();
    const hostWf = h.client.workflow.getHandle(hostWorkflowId(h.hostId));
    await waitUntil(() => hostWf.query(hostStatusQuery), (s) => s.state === 'up', 60_000, 'host up');

    // Who polls what: the shared queue only the control plane, the host queue only the host worker.
    const shared = await waitUntil(() => pollers(h.taskQueue, 1), (p) => p.length > 0, 10_000, 'workflow pollers');
    expect(shared.every((p) => p.startsWith('ekiden-control@'))).toBe(true);
    const sharedActivities = await pollers(h.taskQueue, 2);
    expect(sharedActivities.length).toBeGreaterThan(0);
    expect(sharedActivities.every((p) => p.startsWith('ekiden-control@'))).toBe(true);
    const onHost = await waitUntil(() => pollers(hostTaskQueue(h.hostId), 2), (p) => p.length > 0, 10_000, 'host pollers');
    expect(onHost.every((p) => p.startsWith(`ekiden-host-${h.hostId}@`))).toBe(true);
    expect(host.err()).toContain('"control":false');

    const name = `cp-${Date.now().toString(36).slice(-5)}`;
    const config = h.poolConfig(name, { size: 1, max: 1, backoff: { initialMs: 500, maxMs: 2_000 } });
    pool = await h.client.workflow.start<typeof PoolWorkflow>('PoolWorkflow', {
      workflowId: poolWorkflowId(name),
      taskQueue: h.taskQueue,
      args: [{ config, tuning: resolvePoolTuning({ hostRetryMs: 500 }) }],
      typedSearchAttributes: [{ key: SA_POOL, value: name }],
    });
    const idle = await waitUntil(() => pool!.query(poolStatusQuery), (s) => s.counts.idle === 1, 60_000, 'an idle runner');
    const runner = idle.runners[0]!.workflowId;
    // `ekiden status` names who serves the fleet's queue.
    const status = await runEkiden(['status', '--address', inject('temporalAddress'), '--json'], 30_000);
    const served = (JSON.parse(status.stdout) as { control: Array<{ taskQueue: string; workers: string[] }> }).control.find((c) => c.taskQueue === h.taskQueue);
    expect(served?.workers.length).toBeGreaterThan(0);
    expect(served!.workers.every((w) => w.startsWith('ekiden-control@'))).toBe(true);
    const vms = (await h.driver.list()).map((v) => v.name);
    expect(vms).toHaveLength(1);

    // A Mac restarting: the host worker dies, the control plane keeps answering for the pool.
    await kill(host);
    const during = await pool.query(poolStatusQuery);
    expect(during.runners.map((r) => r.workflowId)).toEqual([runner]);
    host = startHost();
    await waitUntil(() => hostWf.query(hostStatusQuery), (s) => s.state === 'up' && s.announcement?.pid === host.pid, 60_000, 'host back');

    // The control plane dies: nothing on the host is touched; a new one carries on with the same runner and VM.
    await kill(control);
    control = startControl();
    await waitUntil(() => control.err(), (e) => e.includes('"control plane running"'), 60_000, 'control plane back');
    const after = await waitUntil(() => pool!.query(poolStatusQuery), (s) => s.counts.idle === 1, 60_000, 'still idle');
    expect(after.runners.map((r) => r.workflowId)).toEqual([runner]);
    expect((await h.driver.list()).map((v) => v.name)).toEqual(vms);

    await pool.cancel();
    await pool.result().catch(() => {});
    pool = undefined;
    expect(await h.driver.list()).toEqual([]);
    await waitUntil(() => h.emulator.runners().filter((r) => r.name.startsWith(`ekiden-${name}-`)), (r) => r.length === 0, 20_000, 'registration gone');
  });

  it('fleet-wide work once per fleet, on the fleet schedule: GitHub orphans, then each host\'s image cache', async () => {
    const schedule = h.client.schedule.getHandle(fleetScheduleId(h.taskQueue));
    const desc = await schedule.describe();
    expect(desc.spec.intervals).toHaveLength(1);
    expect(desc.spec.intervals![0]!.every).toBe(86_400_000);
    expect(desc.action).toMatchObject({ type: 'startWorkflow', workflowType: FLEET_ROUND_WORKFLOW, taskQueue: h.taskQueue });
    expect(desc.policies.overlap).toBe('SKIP');

    // Leaks for the round: an offline registration named like Ekiden's (and one that is not
    // Ekiden's), and a cached image nothing references, unused for 8 days.
    const orphan = runnerName({ pool: 'gone', token: runToken('orphan-cp') });
    await createJit(h.emulator, TOKEN, `/repos/${REPO}`, orphan);
    await createJit(h.emulator, TOKEN, `/repos/${REPO}`, 'someone-elses-box');
    const stale = `sha256:${'e'.repeat(64)}`;
    const aWeekAgo = new ImageCache({ root: join(h.dir, 'host', 'image-cache'), budgetBytes: 1024 ** 3, retentionMs: 7 * DAY, now: () => Date.now() - 8 * DAY });
    await aWeekAgo.ensure(stale, 4096, async (dir) => writeFileSync(join(dir, 'disk.qcow2'), Buffer.alloc(4096, 1)), { inUse: new Set(), referenced: new Set() });

    const roundsBefore = await rounds();
    await schedule.pause('test: only the triggered round');
    await schedule.trigger();
    const id = await waitUntil(rounds, (r) => r.length > roundsBefore.length, 20_000, 'a round started').then((r) => r.find((x) => !roundsBefore.includes(x))!);
    const result = (await h.client.workflow.getHandle(id).result()) as FleetRoundResult;
    const seen = `round ${id}: ${JSON.stringify(result)}; GitHub runners: ${JSON.stringify(h.emulator.runners().map((r) => [r.name, r.status, r.busy]))}`;
    expect(result.github, seen).toEqual({ removed: [orphan] });
    expect(result.references, seen).toMatchObject({ complete: true });
    expect(result.hosts, seen).toEqual([{ id: h.hostId, state: 'up', images: { held: 0, bytes: 0, deleted: [stale] } }]);
    const names = h.emulator.runners().map((r) => r.name);
    expect(names).not.toContain(orphan);
    expect(names).toContain('someone-elses-box');
    const status = await waitUntil(() => h.client.workflow.getHandle(hostWorkflowId(h.hostId)).query(hostStatusQuery), (s) => s.images !== undefined, 10_000, 'host reports its cache');
    expect(status.images).toMatchObject({ deleted: [stale], deletedTotal: 1, held: [] });

    // The HostWorkflow reconciled its host (first round at start) without a GitHub call of its own.
    const history = await h.client.workflow.getHandle(hostWorkflowId(h.hostId)).fetchHistory();
    const scheduled = (history.events ?? []).map((e) => e.activityTaskScheduledEventAttributes?.activityType?.name).filter(Boolean);
    expect(scheduled, JSON.stringify(scheduled)).toContain('reconcileHost');
    expect(scheduled).not.toContain('reconcileGitHub');
    // This release's replay fixtures (test/workflows/histories.test.ts replays them).
    recordFixture('fleet-round', await h.client.workflow.getHandle(id).fetchHistory());
    recordFixture('host-fleet-round', history);
  });

  it('every control-plane start makes the schedule match: unchanged when it does, updated when the interval changed, an operator\'s pause kept', async () => {
    const schedule = h.client.schedule.getHandle(fleetScheduleId(h.taskQueue));
    await schedule.unpause();
    expect(await ensureFleetSchedule(h.client, h.taskQueue, { intervalMs: 86_400_000 })).toEqual({ action: 'unchanged' });
    await schedule.pause('maintenance window');
    expect(await ensureFleetSchedule(h.client, h.taskQueue, { intervalMs: 30 * 60_000 })).toEqual({ action: 'updated', changes: ['interval', 'policies', 'round settings'] });
    const desc = await schedule.describe();
    expect(desc.spec.intervals![0]!.every).toBe(30 * 60_000);
    expect(desc.state).toMatchObject({ paused: true, note: 'maintenance window' });
    expect(await ensureFleetSchedule(h.client, h.taskQueue, { intervalMs: 30 * 60_000 })).toEqual({ action: 'unchanged' });
  });

  async function rounds(): Promise<string[]> {
    const ids: string[] = [];
    for await (const wf of h.client.workflow.list({ query: `WorkflowType = '${FLEET_ROUND_WORKFLOW}' AND TaskQueue = '${h.taskQueue}'` })) ids.push(wf.workflowId);
    return ids;
  }
});

describe('the control plane in ekiden status', () => {
  it('names the workers serving each fleet queue, and says what to start when none does', () => {
    expect(controlLines([])).toBe('(no pools or hosts)');
    expect(
      controlLines([
        { taskQueue: 'ekiden', workers: ['ekiden-control@ctl-1:41', 'ekiden-shared-mac-1@77'], builds: [], stranded: [] },
        { taskQueue: 'ios', workers: [], builds: [], stranded: [] },
        { taskQueue: 'lab', workers: [], builds: [], stranded: [], error: 'no answer within 5s' },
        { taskQueue: 'mac', workers: ['ekiden-control@ctl-2:9'], builds: ['0.2.0'], stranded: [{ version: 'mac:0.1.0', workflows: 3 }] },
      ]).split('\n'),
    ).toEqual([
      'ekiden: 2 workers (ekiden-control@ctl-1:41, ekiden-shared-mac-1@77)',
      'ios: no worker serves it — its pools and runners wait; start `ekiden control --config FILE` (or give a host control: true)',
      'lab: (could not ask: no answer within 5s)',
      'mac: 1 worker (ekiden-control@ctl-2:9), build 0.2.0',
      'mac: 3 workflows pinned to build 0.1.0 wait: no worker of that version runs; start `ekiden control` of that release until they end (ekiden deployment status)',
    ]);
  });
});
