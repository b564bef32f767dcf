/**
 * Reconciliation removes only Ekiden's own leftovers: VMs, credential files and GitHub
 * registrations named like Ekiden's whose RunnerWorkflow is gone. A live runner's VM and
 * registration, and anything not named like Ekiden's, are never touched. Runs at worker
 * start and on the HostWorkflow's schedule.
 */
import type { WorkflowHandle } from '@temporalio/client';
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hostWorkflowId, runnerName, runToken, vmName } from '../../core/names.js';
import { createJit } from '../../emulator/github/testing.js';
import { CredentialStore } from '../../host/credential-store.js';
import { hostStatusQuery } from '../../workflows/api.js';
import { runnerStatusQuery } from '../../workflows/api.js';
import type { RunnerWorkflow } from '../../workflows/runner.js';
import { createHarness, IMAGE, TOKEN, temporalSkipReason, waitUntil, type Harness } from '../support/harness.js';

const skip = temporalSkipReason();

describe.skipIf(skip)('reconciliation', () => {
  let h: Harness;
  let live: WorkflowHandle<typeof RunnerWorkflow>;
  let liveRunner: string;

  beforeAll(async () => {
    h = await createHarness('reconcile');
    // A live runner first, with a worker that does not reconcile.
    await h.startWorker();
    live = await h.client.workflow.start<typeof RunnerWorkflow>('RunnerWorkflow', {
      workflowId: `runner/rec/live-${Date.now()}`,
      taskQueue: h.taskQueue,
      args: [{ spec: h.spec({ pool: 'rec' }), timing: h.timing() }],
    });
    const s = await waitUntil(() => live.query(runnerStatusQuery), (st) => st.phase === 'idle', 30_000, 'live runner idle');
    liveRunner = s.runnerName;
    await h.stopWorker();
  });
  afterAll(async () => {
    await live?.cancel().catch(() => {});
    await live?.result().catch(() => {});
    await h?.close();
  });

  it('at worker start and on schedule, removes orphans and nothing else', async () => {
    const orphanVm = vmName({ pool: 'rec', token: runToken('orphan-1'), attempt: 1 });
    await h.driver.clone({ image: IMAGE, name: orphanVm });
    await h.driver.start({ name: orphanVm });
    // Not Ekiden's: a directory in the VM root whose name does not parse.
    const vmRoot = join(h.dir, 'vms');
    mkdirSync(join(vmRoot, 'dev-box'), { recursive: true });
    writeFileSync(join(vmRoot, 'dev-box', 'disk.img'), 'not ours');

    const store = new CredentialStore(join(h.dir, 'host', 'credentials'));
    await store.put(runnerName({ pool: 'rec', token: runToken('orphan-1') }), { kind: 'jit', encodedJitConfig: 'x', runnerId: 1 } as never);
    await store.put('someone-else', { kind: 'jit', encodedJitConfig: 'x', runnerId: 2 } as never);

    const orphanReg = runnerName({ pool: 'rec', token: runToken('orphan-2') });
    await createJit(h.emulator, TOKEN, '/repos/acme/app', orphanReg);
    await createJit(h.emulator, TOKEN, '/repos/acme/app', 'build-box-7'); // not named like Ekiden's

    const vmsBefore = (await h.driver.list()).map((v) => v.name);
    expect(vmsBefore).toContain(orphanVm);
    expect(vmsBefore.length).toBe(2);

    const worker = await h.startWorker({ fleet: { capacity: 4, hostTiming: { reconcileIntervalMs: 2_000 } } });
    // At worker start, before the host is announced: the worker's own report says what went
    // (the scheduled rounds of the HostWorkflow would remove the same orphans a moment later).
    const arrival = await worker.ready;
    expect(arrival.removedVms).toEqual([orphanVm]);
    expect(arrival.removedCredentials.some((k) => k.includes(runToken('orphan-1')))).toBe(true);
    expect(arrival.removedRunners).toEqual([orphanReg]);
    const names = () => h.emulator.runners().map((r) => r.name);
    expect(names()).not.toContain(orphanReg);
    const vms = (await h.driver.list()).map((v) => v.name);
    expect(vms).not.toContain(orphanVm);
    expect(vms).toHaveLength(1); // the live runner's VM
    expect(names()).toContain(liveRunner);
    expect(names()).toContain('build-box-7');
    expect(existsSync(join(vmRoot, 'dev-box', 'disk.img'))).toBe(true);
    const keys = readdirSync(join(h.dir, 'host', 'credentials'));
    expect(keys.some((k) => k.includes(runToken('orphan-1')))).toBe(false);
    expect(keys.some((k) => k.includes('someone-else'))).toBe(true);
    expect(keys.some((k) => k.includes(liveRunner))).toBe(true);

    // On schedule: a new orphan appears after start and goes on a later round. Each round
    // replaces `lastReconcile`, so the check is on the running totals, which only grow.
    const host = h.client.workflow.getHandle(hostWorkflowId(h.hostId));
    const before = await waitUntil(() => host.query(hostStatusQuery), (st) => (st.reconciled?.rounds ?? 0) >= 1, 30_000, 'first scheduled round');
    const later = vmName({ pool: 'rec', token: runToken('orphan-3'), attempt: 1 });
    await h.driver.clone({ image: IMAGE, name: later });
    await waitUntil(() => h.driver.list(), (l) => !l.some((v) => v.name === later), 30_000, 'scheduled reconciliation');
    const st = await waitUntil(() => host.query(hostStatusQuery), (s) => (s.reconciled?.vms ?? 0) > (before.reconciled?.vms ?? 0), 30_000, 'removal counted');
    expect(st.reconciled!.rounds).toBeGreaterThan(before.reconciled!.rounds);
    expect((await live.query(runnerStatusQuery)).phase).toBe('idle'); // the live runner never noticed
  });
});
