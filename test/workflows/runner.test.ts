import { WorkflowFailedError, type WorkflowHandle } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import type { ActivityInboundCallsInterceptorFactory } from '@temporalio/worker';
import { readdirSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runnerStatusQuery } from '../../workflows/api.js';
import type { RunnerResult, RunnerSpec, RunnerTiming } from '../../core/runner-spec.js';
import type { RunnerWorkflow } from '../../workflows/runner.js';
import { createHarness, NEVER_BOOT_IMAGE, REPO, temporalSkipReason, type Harness } from '../support/harness.js';

const skip = temporalSkipReason();

/** Fails the first attempt of the named activities *after* they did their work. */
function failFirstAttemptAfterWork(names: Set<string>): ActivityInboundCallsInterceptorFactory {
  return (ctx) => ({
    async execute(input, next) {
      const result = await next(input);
      const workflowId = ctx.info.workflowExecution?.workflowId ?? '';
      const key = `${workflowId}:${ctx.info.activityType}`;
      if (names.has(ctx.info.activityType) && ctx.info.attempt === 1 && workflowId.includes('flaky-')) {
        throw ApplicationFailure.retryable(`injected transient failure ${key}`, 'InjectedTransient');
      }
      return result;
    },
  });
}

const STEPS = ['ensureImage', 'obtainRunnerCredential', 'cloneVm', 'bootVm', 'launchRunner', 'awaitJobStart', 'awaitRunnerExit', 'destroyVm', 'removeRunner', 'discardCredential'];

describe.skipIf(skip)('RunnerWorkflow on a real Temporal server', () => {
  let h: Harness;
  let seq = 0;
  beforeAll(async () => {
    h = await createHarness('runner');
    await h.startWorker({ activityInbound: [failFirstAttemptAfterWork(new Set(STEPS))] });
  });
  afterAll(async () => {
    await h?.close();
  });

  async function start(name: string, spec: Partial<RunnerSpec> = {}, timing: Partial<RunnerTiming> = {}): Promise<WorkflowHandle<typeof RunnerWorkflow>> {
    return h.client.workflow.start<typeof RunnerWorkflow>('RunnerWorkflow', {
      workflowId: `runner/test/${name}-${++seq}-${Date.now()}`,
      taskQueue: `ekiden-${h.hostId}`,
      args: [{ spec: h.spec(spec), timing: h.timing(timing) }],
    });
  }

  async function expectNothingLeft(): Promise<void> {
    expect(await h.driver.list()).toEqual([]);
    expect(h.emulator.runners()).toEqual([]);
    expect(readdirSync(`${h.dir}/host/credentials`)).toEqual([]);
  }

  async function activityCounts(handle: WorkflowHandle): Promise<Record<string, number>> {
    const history = await handle.fetchHistory();
    const counts: Record<string, number> = {};
    for (const e of history.events ?? []) {
      const t = e.activityTaskScheduledEventAttributes?.activityType?.name;
      if (t) counts[t] = (counts[t] ?? 0) + 1;
    }
    return counts;
  }

  it('happy path: a runner takes one job; VM, registration and credential are gone afterwards', async () => {
    const job = h.emulator.queueJob({ repo: REPO, labels: ['self-hosted', 'ekiden-test'], steps: [{ run: 'echo hello' }] });
    const handle = await start('happy');
    const result: RunnerResult = await handle.result();
    expect(result.outcome).toBe('completed');
    expect(result.jobId).toBe(String(job.id));
    expect(result.vmNames).toHaveLength(1);
    expect(result.leftovers).toEqual([]);
    expect(h.emulator.jobs().find((j) => j.id === job.id)?.conclusion).toBe('success');
    await expectNothingLeft();
    const counts = await activityCounts(handle);
    expect(counts.cloneVm).toBe(1);
    expect(counts.destroyVm).toBe(1);
    expect(counts.collectRunnerLogs).toBeUndefined(); // taken with the runner's exit
    const desc = await handle.describe();
    expect(desc.typedSearchAttributes.getAll().map((p) => [p.key.name, p.value])).toEqual(
      expect.arrayContaining([['EkidenPhase', 'done'], ['EkidenJob', String(job.id)], ['EkidenRunner', result.runnerName]]),
    );
  });

  it('registration-token mode (servers without JIT) runs a job and cleans up', async () => {
    const job = h.emulator.queueJob({ repo: REPO, labels: ['ekiden-test'], steps: [{ run: 'true' }] });
    const result = await (await start('regtoken', { credential: 'registration-token' })).result();
    expect(result.outcome).toBe('completed');
    expect(h.emulator.jobs().find((j) => j.id === job.id)?.conclusion).toBe('success');
    await expectNothingLeft();
  });

  it('a failing job is reported by GitHub as failed and everything is still cleaned up', async () => {
    const job = h.emulator.queueJob({ repo: REPO, labels: ['ekiden-test'], steps: [{ run: 'exit 3' }] });
    const result = await (await start('failjob')).result();
    expect(result.outcome).toBe('completed');
    expect(h.emulator.jobs().find((j) => j.id === job.id)?.conclusion).toBe('failure');
    await expectNothingLeft();
  });

  it('every step failing once after doing its work is retried with exactly one VM', async () => {
    h.emulator.queueJob({ repo: REPO, labels: ['ekiden-test'], steps: [{ run: 'true' }] });
    const handle = await start('flaky');
    const result = await handle.result();
    expect(result.outcome).toBe('completed');
    expect(result.vmNames).toHaveLength(1);
    await expectNothingLeft();
    // History records the attempt of each activity's last start: every step needed a second one.
    const history = await handle.fetchHistory();
    const typeOf = new Map<string, string>();
    const attempts: Record<string, number> = {};
    for (const e of history.events ?? []) {
      const scheduled = e.activityTaskScheduledEventAttributes;
      if (scheduled) typeOf.set(String(e.eventId), scheduled.activityType!.name!);
      const started = e.activityTaskStartedEventAttributes;
      if (started) attempts[typeOf.get(String(started.scheduledEventId))!] = started.attempt!;
    }
    expect(Object.keys(attempts).sort()).toEqual([...STEPS].sort());
    for (const step of STEPS) expect(attempts[step], step).toBe(2);
  });

  it('GitHub 5xx and a secondary rate limit on the JIT request are retried', async () => {
    h.emulator.injectFault({ method: 'POST', path: 'generate-jitconfig', kind: 'status', status: 502, times: 1 });
    h.emulator.injectFault({ method: 'POST', path: 'generate-jitconfig', kind: 'secondary-rate-limit', retryAfterSeconds: 1, times: 1 });
    h.emulator.queueJob({ repo: REPO, labels: ['ekiden-test'], steps: [{ run: 'true' }] });
    const result = await (await start('gh5xx')).result();
    expect(result.outcome).toBe('completed');
    await expectNothingLeft();
  });

  it('a permanent failure (unknown image) fails the runner and leaves nothing', async () => {
    const handle = await start('noimage', { image: 'ekiden/does-not-exist:1' });
    const err = await handle.result().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WorkflowFailedError);
    const cause = (err as WorkflowFailedError).cause;
    expect(String(cause?.cause instanceof Error ? cause.cause.message : cause?.message)).toMatch(/not found/);
    await expectNothingLeft();
  });

  it('a bad GitHub token fails fast without looping and leaves nothing', async () => {
    h.emulator.injectFault({ method: 'POST', path: 'generate-jitconfig', kind: 'status', status: 401, times: 1 });
    const handle = await start('badtoken');
    await expect(handle.result()).rejects.toBeInstanceOf(WorkflowFailedError);
    const counts = await activityCounts(handle);
    expect(counts.obtainRunnerCredential).toBe(1);
    await expectNothingLeft();
  });

  it('a VM that never boots hits the boot timeout, a fresh VM is tried, and both are cleaned up', async () => {
    const handle = await start('neverboot', { image: NEVER_BOOT_IMAGE }, { bootTimeoutMs: 2_000, bootAttempts: 2 });
    const err = await handle.result().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WorkflowFailedError);
    const cause = (err as WorkflowFailedError).cause;
    expect(cause?.cause).toBeInstanceOf(ApplicationFailure);
    expect((cause?.cause as ApplicationFailure).type).toBe('EkidenBootTimeout');
    const counts = await activityCounts(handle);
    expect(counts.cloneVm).toBe(2);
    expect(counts.destroyVm).toBe(2);
    expect(counts.collectRunnerLogs).toBeUndefined();
    await expectNothingLeft();
  });

  it('idle timeout: a runner that gets no job is deregistered first, then its VM goes', async () => {
    const result = await (await start('idle', {}, { idleTimeoutMs: 3_000 })).result();
    expect(result.outcome).toBe('idle-timeout');
    await expectNothingLeft();
  });

  it('max job duration: a job running too long is stopped and everything is cleaned up', async () => {
    const job = h.emulator.queueJob({ repo: REPO, labels: ['ekiden-test'], steps: [{ run: 'sleep 120' }] });
    const result = await (await start('longjob', {}, { maxJobMs: 3_000 })).result();
    expect(result.outcome).toBe('job-timeout');
    expect(result.jobId).toBe(String(job.id));
    await expectNothingLeft();
    await expect.poll(() => h.emulator.jobs().find((j) => j.id === job.id)?.status, { timeout: 15_000 }).toBe('completed');
  });

  it.each(['booting', 'idle'])('cancellation while %s cleans up', async (phase) => {
    // The phase is held, not raced: a guest that never answers SSH stays booting until its
    // boot timeout, and an idle runner stays idle until its idle timeout (no job is queued).
    const handle = await start(`cancel-${phase}`, phase === 'booting' ? { image: NEVER_BOOT_IMAGE } : {}, { bootTimeoutMs: 60_000 });
    await expect
      .poll(async () => (await handle.query(runnerStatusQuery)).phase, { timeout: 30_000, interval: 100 })
      .toBe(phase);
    await handle.cancel();
    const err = await handle.result().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WorkflowFailedError);
    await expectNothingLeft();
  });
});
