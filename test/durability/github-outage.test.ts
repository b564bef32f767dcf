/**
 * GitHub goes down (the emulator answers every runner-management call 503, as GitHub does in
 * an outage) twice in one runner's life: while the runner's credential is asked for, and while
 * its registration is removed in cleanup. Each step waits with backoff — a bounded number of
 * calls, never a tight loop — and carries on once GitHub answers again: the runner starts, and
 * cleanup completes with nothing left. The VM half of cleanup does not wait for GitHub.
 */
import { WorkflowFailedError } from '@temporalio/client';
import { readdirSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FaultView } from '../../emulator/github/server.js';
import { runnerStatusQuery } from '../../workflows/api.js';
import type { RunnerWorkflow } from '../../workflows/runner.js';
import { createHarness, REPO, temporalSkipReason, waitUntil, type Harness } from '../support/harness.js';

const skip = temporalSkipReason();
const OUTAGE_MS = 20_000;
/** A fault that hits this many calls is "until cleared"; what it has left counts the calls. */
const MANY = 100_000;

describe.skipIf(skip)('GitHub down mid-lifecycle', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await createHarness('ghdown');
    await h.startWorker();
  });
  afterAll(async () => {
    h?.emulator.clearFaults();
    await h?.close();
  });

  /** GitHub's runner endpoints answer 503 until `end()`; it says how many calls were refused. */
  function outage(): { end(): number } {
    const fault: FaultView = h.emulator.injectFault({ kind: 'status', status: 503, path: `^/repos/${REPO}/actions/runners`, times: MANY });
    return {
      end() {
        const left = h.emulator.faults().find((f) => f.id === fault.id)?.remaining ?? MANY;
        h.emulator.clearFaults();
        return MANY - left;
      },
    };
  }

  it('steps wait with backoff and go on when GitHub answers again; cleanup completes', async () => {
    const down = outage();
    const handle = await h.client.workflow.start<typeof RunnerWorkflow>('RunnerWorkflow', {
      workflowId: `runner/test/ghdown-${Date.now()}`,
      taskQueue: h.taskQueue,
      args: [{ spec: h.spec(), timing: h.timing({ deregisterTimeoutMs: 120_000 }) }],
    });
    const phase = async () => (await handle.query(runnerStatusQuery)).phase;
    await new Promise((r) => setTimeout(r, OUTAGE_MS));
    // Still asking for its credential: no VM yet, no registration, the workflow alive.
    expect(['pulling', 'credential']).toContain(await phase()); // image pull and credential run side by side
    expect(await h.driver.list()).toEqual([]);
    const refusedWhileStarting = down.end();
    expect(refusedWhileStarting).toBeGreaterThan(0);
    // Activity retries 2 s doubling (each attempt with the client's own few retries): a handful in 20 s.
    expect(refusedWhileStarting).toBeLessThan(20);

    await waitUntil(phase, (p) => p === 'idle', 60_000, 'runner idle once GitHub is back');
    expect(h.emulator.runners()).toHaveLength(1);

    // Down again, now for cleanup: the VM goes at once, the registration waits for GitHub.
    const downAgain = outage();
    await handle.cancel();
    await waitUntil(() => h.driver.list(), (l) => l.length === 0, 30_000, 'VM removed while GitHub is down');
    await new Promise((r) => setTimeout(r, OUTAGE_MS));
    expect((await handle.describe()).status.name).toBe('RUNNING');
    expect(h.emulator.runners()).toHaveLength(1);
    const refusedInCleanup = downAgain.end();
    expect(refusedInCleanup).toBeGreaterThan(0);
    expect(refusedInCleanup).toBeLessThan(20);
    console.info(`GitHub calls refused in ${OUTAGE_MS / 1000} s of outage: ${refusedWhileStarting} while starting, ${refusedInCleanup} in cleanup`);

    const err = await handle.result().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WorkflowFailedError); // cancelled, after its cleanup
    expect(h.emulator.runners()).toEqual([]);
    expect(await h.driver.list()).toEqual([]);
    expect(readdirSync(`${h.dir}/host/credentials`)).toEqual([]);
  });
});
