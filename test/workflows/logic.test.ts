/**
 * The fast layer: RunnerWorkflow and PoolWorkflow on the real Temporal server with stub
 * activities (test/support/stub-world.ts). Every timing path of a runner's life — idle
 * timeout, a job landing as the runner is removed, max job duration, boot retries,
 * retirement, a host going down, cancellation — and the pool's backoff and continue-as-new,
 * in seconds. The same paths with real VMs, SSH and the GitHub emulator stay in the
 * integration suites.
 */
import { WorkflowFailedError, type WorkflowHandle } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { poolWorkflowInput } from '../../core/defaults.js';
import { failureMessage, failureType, FailureType } from '../../core/failures.js';
import { FINISHING_GRACE_MS } from '../../core/runner-policy.js';
import type { RunnerTiming } from '../../core/runner-spec.js';
import {
  hostDownSignal,
  jobProgressedSignal,
  poolStatusQuery,
  retireRunnerSignal,
  runnerStatusQuery,
  scalePoolUpdate,
  type PoolTuning,
} from '../../workflows/api.js';
import type { PoolWorkflow } from '../../workflows/pool.js';
import type { RunnerWorkflow } from '../../workflows/runner.js';
import { temporalSkipReason, waitUntil } from '../support/harness.js';
import { createStubWorld, type Script, type StubWorld } from '../support/stub-world.js';

const skip = temporalSkipReason();

describe.skipIf(skip)('workflow logic with stub activities', () => {
  let w: StubWorld;
  let seq = 0;
  beforeAll(async () => {
    w = await createStubWorld('logic');
  });
  afterAll(async () => {
    await w?.close();
  });

  async function runner(script: Script, timing: Partial<RunnerTiming> = {}): Promise<WorkflowHandle<typeof RunnerWorkflow>> {
    const workflowId = `runner/stub/${++seq}-${Date.now().toString(36)}`;
    w.script(workflowId, script);
    return w.client.workflow.start<typeof RunnerWorkflow>('RunnerWorkflow', {
      workflowId,
      taskQueue: w.taskQueue,
      args: [{ spec: w.spec(), timing: w.timing(timing) }],
    });
  }
  const steps = (h: WorkflowHandle) => w.callsOf(h.workflowId).map((c) => c.activity);
  const phase = async (h: WorkflowHandle<typeof RunnerWorkflow>) => (await h.query(runnerStatusQuery)).phase;
  const failureOf = async (h: WorkflowHandle) => {
    const err = await h.result().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WorkflowFailedError);
    return (err as WorkflowFailedError).cause;
  };

  it('a job: every step once, in the design order, then both cleanup halves', async () => {
    const h = await runner({ start: { kind: 'job', jobId: '4242' } });
    const result = await h.result();
    expect(result).toMatchObject({ outcome: 'completed', jobId: '4242', leftovers: [] });
    const s = steps(h);
    expect(s.slice(0, 2).sort()).toEqual(['ensureImage', 'obtainRunnerCredential']);
    expect(s.slice(2, 6)).toEqual(['cloneVm', 'bootVm', 'launchRunner', 'awaitJobStart']);
    expect(s[6]).toBe('awaitRunnerExit');
    // Logs came with the runner's exit, so cleanup does not collect them again.
    expect(s.slice(7).sort()).toEqual(['destroyVm', 'discardCredential', 'removeRunner']);
    expect(await phase(h)).toBe('done');
  });

  it('idle timeout: deregistered (busy allowed) before the runner is stopped; no job awaited', async () => {
    const h = await runner({ start: { kind: 'idle' } }, { idleTimeoutMs: 500 });
    expect((await h.result()).outcome).toBe('idle-timeout');
    const s = steps(h);
    expect(s.indexOf('removeRunner')).toBeLessThan(s.indexOf('stopGuestRunner'));
    expect(w.callsOf(h.workflowId).find((c) => c.activity === 'removeRunner')!.args.allowBusy).toBe(true);
    expect(s).not.toContain('awaitRunnerExit');
    expect(s).toContain('destroyVm');
  });

  it('idle timeout as a job lands (GitHub 422 busy): the job runs to its full deadline', async () => {
    const h = await runner({ start: { kind: 'idle' }, removal: 'busy' }, { idleTimeoutMs: 300, maxJobMs: 600_000 });
    expect((await h.result()).outcome).toBe('completed');
    const exit = w.callsOf(h.workflowId).find((c) => c.activity === 'awaitRunnerExit')!;
    expect(exit.args.jobDeadline as number).toBeGreaterThanOrEqual(exit.at + 600_000 - 5_000);
    expect(steps(h)).not.toContain('stopGuestRunner');
  });

  it('idle timeout after the registration vanished (its job is ending): a short grace, not a full job', async () => {
    const h = await runner({ start: { kind: 'idle' }, removal: 'not-found' }, { idleTimeoutMs: 300, maxJobMs: 600_000 });
    expect((await h.result()).outcome).toBe('completed');
    const exit = w.callsOf(h.workflowId).find((c) => c.activity === 'awaitRunnerExit')!;
    expect(exit.args.jobDeadline as number).toBeLessThanOrEqual(exit.at + FINISHING_GRACE_MS + 1_000);
  });

  it('max job duration: the job is stopped at its deadline', async () => {
    const h = await runner({ start: { kind: 'job' }, jobHangs: true }, { maxJobMs: 800 });
    expect((await h.result()).outcome).toBe('job-timeout');
    const started = w.callsOf(h.workflowId).find((c) => c.activity === 'awaitJobStart')!;
    const exit = w.callsOf(h.workflowId).find((c) => c.activity === 'awaitRunnerExit')!;
    expect(exit.args.jobDeadline as number).toBeLessThanOrEqual(Date.now());
    expect(exit.args.jobDeadline as number).toBeGreaterThanOrEqual(started.at + 800);
  });

  it('a runner that exits without a job ends as runner-exited', async () => {
    const h = await runner({ start: { kind: 'exited' } });
    expect((await h.result()).outcome).toBe('runner-exited');
    expect(steps(h)).not.toContain('awaitRunnerExit');
  });

  it.each([
    ['the image fails while the credential is still being fetched', { imageMissing: true, credentialDelayMs: 3_000 }, 'obtainRunnerCredential:cancelled'],
    ['the image fails after the credential came', { imageMissing: true, imageDelayMs: 1_500, credentialDelayMs: 200 }, 'obtainRunnerCredential:done'],
  ] as const)('%s: cleanup starts only once the sibling step has settled', async (_why, script, end) => {
    const h = await runner(script);
    expect(failureType(await failureOf(h))).toBe(FailureType.ImageNotFound);
    const s = steps(h);
    expect(s).toContain(end);
    // Nothing can be registered or written after cleanup removed it.
    expect(s.indexOf(end)).toBeLessThan(s.indexOf('removeRunner'));
    expect(s.indexOf(end)).toBeLessThan(s.indexOf('discardCredential'));
    expect(s).not.toContain('cloneVm');
  });

  it('registry down during the pull: retried with growing gaps, nothing cloned meanwhile, then the runner runs its job', async () => {
    const h = await runner({ registryDownPulls: 3, start: { kind: 'job', jobId: '77' } });
    const result = await h.result();
    expect(result).toMatchObject({ outcome: 'completed', jobId: '77', leftovers: [] });
    const calls = w.callsOf(h.workflowId);
    const pulls = calls.filter((c) => c.activity === 'ensureImage').map((c) => c.at);
    expect(pulls).toHaveLength(4);
    // The runner workflow's retry policy: 1 s, then doubling. No tight loop.
    const gaps = pulls.slice(1).map((t, i) => t - pulls[i]!);
    gaps.forEach((gap, i) => expect(gap).toBeGreaterThanOrEqual(1000 * 2 ** i - 50));
    const firstClone = calls.findIndex((c) => c.activity === 'cloneVm');
    expect(firstClone).toBeGreaterThan(calls.map((c) => c.activity).lastIndexOf('ensureImage'));
  });

  it('registry refusing the credentials: one pull, no retry, the runner fails with the reason and cleans up', async () => {
    const h = await runner({ registryRefuses: true });
    const failure = await failureOf(h);
    expect(failureType(failure)).toBe(FailureType.RegistryAuth);
    expect(failureMessage(failure)).toContain('registry.passwordEnv');
    const s = steps(h);
    expect(s.filter((a) => a === 'ensureImage')).toHaveLength(1);
    expect(s).not.toContain('cloneVm');
    expect(s).toContain('removeRunner');
    expect(s).toContain('discardCredential');
    expect(await phase(h)).toBe('failed');
  });

  it('a failed boot gets a fresh VM; the broken one is destroyed first', async () => {
    const h = await runner({ bootFails: [1] }, { bootAttempts: 2 });
    const result = await h.result();
    expect(result.outcome).toBe('completed');
    expect(result.vmNames).toHaveLength(2);
    const vmCalls = w.callsOf(h.workflowId).filter((c) => ['cloneVm', 'bootVm', 'destroyVm'].includes(c.activity)).map((c) => `${c.activity} ${String(c.args.vmName).slice(-2)}`);
    expect(vmCalls).toEqual(['cloneVm -1', 'bootVm -1', 'destroyVm -1', 'cloneVm -2', 'bootVm -2', 'destroyVm -2']);
  });

  it('boot attempts exhausted: the runner fails with the boot timeout and every VM is destroyed', async () => {
    const h = await runner({ bootFails: [1, 2, 3] }, { bootAttempts: 2 });
    expect(failureType(await failureOf(h))).toBe(FailureType.BootTimeout);
    const destroyed = w.callsOf(h.workflowId).filter((c) => c.activity === 'destroyVm').map((c) => String(c.args.vmName).slice(-2));
    expect(destroyed).toEqual(['-1', '-2']);
    expect(steps(h)).toContain('removeRunner');
    expect(steps(h)).toContain('discardCredential');
    expect(await phase(h)).toBe('failed');
  });

  it('bootAttempts comes from the input: one attempt means no second VM', async () => {
    const h = await runner({ bootFails: [1] }, { bootAttempts: 1 });
    expect(failureType(await failureOf(h))).toBe(FailureType.BootTimeout);
    expect(w.callsOf(h.workflowId).filter((c) => c.activity === 'cloneVm')).toHaveLength(1);
  });

  it('retired while idle: the wait is cancelled, the runner deregistered, outcome retired', async () => {
    const h = await runner({ start: { kind: 'idle' } }, { idleTimeoutMs: 10 * 60_000 });
    await waitUntil(() => phase(h), (p) => p === 'idle', 20_000, 'idle');
    await h.signal(retireRunnerSignal);
    expect((await h.result()).outcome).toBe('retired');
    expect(steps(h).indexOf('removeRunner')).toBeLessThan(steps(h).indexOf('stopGuestRunner'));
  });

  it('host down while idle: deregistered at once, the VM left to reconciliation', async () => {
    const h = await runner({ start: { kind: 'idle' } }, { idleTimeoutMs: 10 * 60_000 });
    await waitUntil(() => phase(h), (p) => p === 'idle', 20_000, 'idle');
    await h.signal(hostDownSignal);
    expect(failureType(await failureOf(h))).toBe(FailureType.HostDown);
    expect(steps(h)).toContain('removeRunner');
    expect(steps(h)).not.toContain('destroyVm');
    const st = await h.query(runnerStatusQuery);
    expect(st.leftovers?.some((l) => l.startsWith('vm '))).toBe(true);
    expect(st.leftovers?.some((l) => l.startsWith('credential '))).toBe(true);
  });

  it('cancelled while booting: cleanup runs and the VM is destroyed', async () => {
    const h = await runner({ bootHangs: true });
    await waitUntil(() => phase(h), (p) => p === 'booting', 20_000, 'booting');
    await h.cancel();
    await failureOf(h);
    expect(steps(h)).toEqual(expect.arrayContaining(['destroyVm', 'removeRunner', 'discardCredential']));
    expect(steps(h)).not.toContain('launchRunner');
  });

  describe('pools', () => {
    let pools: WorkflowHandle<typeof PoolWorkflow>[] = [];
    afterAll(async () => {
      for (const p of pools) await p.cancel().catch(() => {});
      for (const p of pools) await p.result().catch(() => {});
      pools = [];
    });
    async function pool(name: string, script: Script, o: { size?: number; max?: number; backoff?: { initialMs: number; maxMs: number } } = {}, tuning: Partial<PoolTuning> = {}) {
      w.script(`runner/${name}/*`, script);
      const input = poolWorkflowInput(
        {
          name,
          hosts: [w.host],
          image: 'ekiden/stub:1',
          labels: ['self-hosted', name],
          runnerGroupId: 1,
          runnerDir: 'actions-runner',
          credential: 'jit',
          size: o.size ?? 1,
          minIdle: 0,
          max: o.max ?? 4,
          timing: w.timing(),
          backoff: o.backoff,
        },
        { hostRetryMs: 200, ...tuning },
      );
      const p = await w.client.workflow.start<typeof PoolWorkflow>('PoolWorkflow', { workflowId: `pool/${name}`, taskQueue: w.taskQueue, args: [input] });
      pools.push(p);
      return p;
    }

    it('failing runners are replaced with exponential backoff, never in a tight loop', async () => {
      const name = `bo-${Date.now().toString(36).slice(-5)}`;
      const p = await pool(name, { imageMissing: true }, { backoff: { initialMs: 400, maxMs: 3_200 } });
      const st = await waitUntil(() => p.query(poolStatusQuery), (s) => s.consecutiveFailures >= 4, 30_000, 'four failures');
      expect(st.blocked).toMatch(/^backing off after \d+ failed runners$/);
      // Each runner starts no earlier than the backoff after the previous one failed.
      const starts = w.calls.filter((c) => c.workflowId.startsWith(`runner/${name}/`) && c.activity === 'ensureImage').map((c) => c.at);
      const gaps = starts.slice(1).map((t, i) => t - starts[i]!);
      gaps.slice(0, 3).forEach((gap, i) => expect(gap).toBeGreaterThanOrEqual(400 * 2 ** i - 50));
      await p.cancel();
      await p.result().catch(() => {});
    });

    it('runners that exit without taking a job (outdated ones do) are replaced with backoff, and the pool says why', async () => {
      const name = `ex-${Date.now().toString(36).slice(-5)}`;
      const p = await pool(name, { start: { kind: 'exited' } }, { backoff: { initialMs: 300, maxMs: 2_400 } });
      const st = await waitUntil(() => p.query(poolStatusQuery), (s) => s.consecutiveFailures >= 3, 30_000, 'three exits counted');
      expect(st.failed).toBeGreaterThanOrEqual(3);
      expect(st.recentFailures[0]!.message).toMatch(/exited without taking a job/);
      expect(st.blocked ?? '').toMatch(/^(backing off after \d+ failed runners)?$/);
      await p.cancel();
      await p.result().catch(() => {});
    });

    it('a runner being retired stays retired across continue-as-new', async () => {
      const name = `can-${Date.now().toString(36).slice(-5)}`;
      // Deregistration takes a while, so the retirement is still under way when the pool continues as new.
      const p = await pool(name, { start: { kind: 'idle' }, removeDelayMs: 6_000 }, { size: 2, max: 2 }, { maxHistoryEvents: 60 });
      await waitUntil(() => p.query(poolStatusQuery), (s) => s.counts.idle === 2, 20_000, 'two idle');
      const runsBefore = (await p.query(poolStatusQuery)).runs;
      await p.executeUpdate(scalePoolUpdate, { args: [{ size: 1, max: 2 }] });
      // Grow the history past the limit while the retirement is under way (news of jobs that are not ours changes nothing else).
      for (let i = 0; i < 40; i++) await p.signal(jobProgressedSignal, { jobId: `elsewhere-${i}`, action: 'completed' });
      const during = await waitUntil(() => p.query(poolStatusQuery), (s) => s.runs > runsBefore && s.retiring === 1, 10_000, 'a new run with the retirement carried');
      expect(during.target).toBe(1);
      const after = await waitUntil(() => p.query(poolStatusQuery), (s) => s.retiring === 0 && s.counts.idle === 1 && s.runners.length === 1, 20_000, 'retired');
      expect(after.completed).toBeGreaterThanOrEqual(1);
      // Only the one runner was ever told to retire, and no replacement was started.
      const retireSignals = w.calls.filter((c) => c.workflowId.startsWith(`runner/${name}/`) && c.activity === 'stopGuestRunner');
      expect(retireSignals).toHaveLength(1);
      expect(after.started).toBe(2);
    });
  });
});
