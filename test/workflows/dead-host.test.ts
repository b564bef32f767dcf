/**
 * A host that stops answering must not keep a runner registered on GitHub: GitHub-side
 * cleanup runs on any worker, and the host side gives up after hostCleanupTimeoutMs,
 * reporting what it left for reconciliation.
 */
import { WorkflowFailedError } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runnerStatusQuery } from '../../workflows/api.js';
import type { RunnerWorkflow } from '../../workflows/runner.js';
import { createHarness, temporalSkipReason, waitUntil, type Harness } from '../support/harness.js';

const skip = temporalSkipReason();

describe.skipIf(skip)('a dead host', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await createHarness('deadhost');
    await h.startWorker({ serveHost: false }); // workflows + GitHub calls only
  });
  afterAll(async () => {
    await h?.close();
  });

  it('does not block deregistration when its runner is cancelled', async () => {
    const host = await h.createWorker({ serveHost: true, serveShared: false });
    const hostRun = host.run();
    const handle = await h.client.workflow.start<typeof RunnerWorkflow>('RunnerWorkflow', {
      workflowId: `runner/test/deadhost-${Date.now()}`,
      taskQueue: `ekiden-${h.hostId}`,
      args: [{ spec: h.spec(), timing: h.timing({ hostCleanupTimeoutMs: 5_000 }) }],
    });
    await waitUntil(async () => (await handle.query(runnerStatusQuery)).phase, (p) => p === 'idle', 60_000, 'idle');
    expect(h.emulator.runners()).toHaveLength(1);

    // The host goes away for good (its VM keeps running, as after a crash).
    host.shutdown();
    await hostRun;
    await handle.cancel();

    // Deregistration happens without the host …
    await waitUntil(() => h.emulator.runners().length, (n) => n === 0, 30_000, 'runner deregistered');
    // … and the workflow ends, naming the VM it could not delete.
    const err = await handle.result().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WorkflowFailedError);
    const status = await handle.query(runnerStatusQuery);
    expect(status.leftovers).toEqual([`vm ${status.vmName} on ${h.hostId}`, `credential ${status.vmName!.replace(/-\d+$/, '')} on ${h.hostId}`]);
    expect((await h.driver.list()).map((v) => v.name)).toEqual([status.vmName]);
  });
});
