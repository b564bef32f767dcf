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
import { hostWorkflowId, runnerName, vmName } from '../../core/names.js';
import { createJit } from '../../emulator/github/testing.js';
import { CredentialStore } from '../../host/credential-store.js';
import { hostStatusQuery } from '../../workflows/api.js';
import { runnerStatusQuery, type RunnerWorkflow } from '../../workflows/runner.js';
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
    const orphanVm = vmName({ pool: 'rec', token: 'orphan1', attempt: 1 });
    await h.driver.clone({ image: IMAGE, name: orphanVm });
    await h.driver.start({ name: orphanVm });
    // Not Ekiden's: a directory in the VM root whose name does not parse.
    const vmRoot = join(h.dir, 'vms');
    mkdirSync(join(vmRoot, 'dev-box'), { recursive: true });
    writeFileSync(join(vmRoot, 'dev-box', 'disk.img'), 'not ours');

    const store = new CredentialStore(join(h.dir, 'host', 'credentials'));
    await store.put(runnerName({ pool: 'rec', token: 'orphan1' }), { kind: 'jit', encodedJitConfig: 'x', runnerId: 1 } as never);
    await store.put('someone-else', { kind: 'jit', encodedJitConfig: 'x', runnerId: 2 } as never);

    const orphanReg = runnerName({ pool: 'rec', token: 'orphan2' });
    await createJit(h.emulator, TOKEN, '/repos/acme/app', orphanReg);
    await createJit(h.emulator, TOKEN, '/repos/acme/app', 'build-box-7'); // not named like Ekiden's

    const vmsBefore = (await h.driver.list()).map((v) => v.name);
    expect(vmsBefore).toContain(orphanVm);
    expect(vmsBefore.length).toBe(2);

    await h.startWorker({ fleet: { capacity: 4, hostTiming: { reconcileIntervalMs: 2_000 } } });
    const names = () => h.emulator.runners().map((r) => r.name);
    await waitUntil(() => names(), (n) => !n.includes(orphanReg), 20_000, 'orphan registration removed');
    const vms = (await h.driver.list()).map((v) => v.name);
    expect(vms).not.toContain(orphanVm);
    expect(vms).toHaveLength(1); // the live runner's VM
    expect(names()).toContain(liveRunner);
    expect(names()).toContain('build-box-7');
    expect(existsSync(join(vmRoot, 'dev-box', 'disk.img'))).toBe(true);
    const keys = readdirSync(join(h.dir, 'host', 'credentials'));
    expect(keys.some((k) => k.includes('orphan1'))).toBe(false);
    expect(keys.some((k) => k.includes('someone-else'))).toBe(true);
    expect(keys.some((k) => k.includes(liveRunner))).toBe(true);

    // On schedule: a new orphan appears after start and goes on the next round.
    const later = vmName({ pool: 'rec', token: 'orphan3', attempt: 1 });
    await h.driver.clone({ image: IMAGE, name: later });
    const host = h.client.workflow.getHandle(hostWorkflowId(h.hostId));
    await waitUntil(() => h.driver.list(), (l) => !l.some((v) => v.name === later), 30_000, 'scheduled reconciliation');
    const st = await host.query(hostStatusQuery);
    expect(st.lastReconcile?.removedVms ?? []).toContain(later);
    expect((await live.query(runnerStatusQuery)).phase).toBe('idle'); // the live runner never noticed
  });
});
