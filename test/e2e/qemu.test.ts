/**
 * End to end with real VMs: QEMU guests (Debian, OpenSSH, the runner stand-in) booted under
 * software emulation, a real Temporal server, the GitHub emulator on the host.
 */
import { WorkflowFailedError, type WorkflowHandle } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { runnerStatusQuery } from '../../workflows/api.js';
import { inject } from 'vitest';
import type { RunnerTiming } from '../../core/runner-spec.js';
import type { QemuDriver } from '../../drivers/qemu.js';
import type { RunnerWorkflow } from '../../workflows/runner.js';
import { createHarness, qemuSkipReason, REPO, ROOT, TOKEN, waitUntil, type Harness } from '../support/harness.js';

const skip = await qemuSkipReason();
if (skip) console.warn(`skipping QEMU end-to-end tests: ${skip}`);

/** QEMU processes whose command line mentions `dir`. */
function qemuProcessesUnder(dir: string): string[] {
  return readdirSync('/proc')
    .filter((p) => /^\d+$/.test(p))
    .flatMap((pid) => {
      try {
        const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
        return cmd.startsWith('qemu-system') || cmd.includes('/qemu-system') ? (cmd.includes(dir) ? [pid] : []) : [];
      } catch {
        return [];
      }
    });
}

const BOOT: Partial<RunnerTiming> = { bootTimeoutMs: 180_000, heartbeatTimeoutMs: 10_000, hostCleanupTimeoutMs: 120_000 };

describe.skipIf(skip)('real QEMU VMs', { timeout: 400_000 }, () => {
  let h: Harness;
  let seq = 0;
  let workerProc: ChildProcess | undefined;
  beforeAll(async () => {
    h = await createHarness('e2e', { driver: 'qemu' });
  });
  afterEach(() => {
    workerProc?.kill('SIGKILL');
    workerProc = undefined;
  });
  afterAll(async () => {
    await h?.close();
  });

  const start = (name: string, timing: Partial<RunnerTiming> = {}): Promise<WorkflowHandle<typeof RunnerWorkflow>> =>
    h.client.workflow.start<typeof RunnerWorkflow>('RunnerWorkflow', {
      workflowId: `runner/e2e/${name}-${++seq}-${Date.now()}`,
      taskQueue: `ekiden-${h.hostId}`,
      args: [{ spec: h.spec(), timing: h.timing({ ...BOOT, ...timing }) }],
    });

  async function expectNothingLeft(): Promise<void> {
    expect(await h.driver.list()).toEqual([]);
    expect(qemuProcessesUnder(h.dir)).toEqual([]);
    expect(h.emulator.runners()).toEqual([]);
  }

  describe('with an in-process worker', () => {
    beforeAll(async () => {
      await h.startWorker();
    });
    afterAll(async () => {
      await h.stopWorker();
    });

    it('a job runs inside a fresh VM and succeeds; the VM and its QEMU process are gone afterwards', async () => {
      const job = h.emulator.queueJob({ repo: REPO, labels: ['ekiden-test'], steps: [{ run: 'test "$(id -un)" = runner && grep -q bookworm /etc/os-release && echo "in $(hostname)"' }] });
      const result = await (await start('ok')).result();
      expect(result.outcome).toBe('completed');
      expect(h.emulator.job(job.id)?.conclusion).toBe('success');
      // The guest's runner logs were copied to the host before the VM went away.
      const logs = readdirSync(join(h.dir, 'host', 'runner-logs', result.runnerName), { recursive: true }).map(String);
      expect(logs.some((f) => /Worker_.*\.log$/.test(f))).toBe(true);
      await expectNothingLeft();
    });

    it('a failing job is reported as failed and the VM is still cleaned up', async () => {
      const job = h.emulator.queueJob({ repo: REPO, labels: ['ekiden-test'], steps: [{ run: 'echo about to fail; exit 7' }] });
      const result = await (await start('fail')).result();
      expect(result.outcome).toBe('completed');
      expect(h.emulator.job(job.id)?.conclusion).toBe('failure');
      await expectNothingLeft();
    });

    it('a VM that does not boot in time hits the boot timeout and is cleaned up', async () => {
      const handle = await start('noboot', { bootTimeoutMs: 2_000, bootAttempts: 1 });
      const err = await handle.result().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(WorkflowFailedError);
      expect(((err as WorkflowFailedError).cause?.cause as ApplicationFailure).type).toBe('EkidenBootTimeout');
      await expectNothingLeft();
    });

    it('the QEMU process killed mid-job: the runner is deregistered and the slot is free again', async () => {
      const job = h.emulator.queueJob({ repo: REPO, labels: ['ekiden-test'], steps: [{ run: 'sleep 300' }] });
      const handle = await start('qemukill');
      await waitUntil(async () => (await handle.query(runnerStatusQuery)).phase, (p) => p === 'busy', 300_000, 'busy');
      const { vmName } = await handle.query(runnerStatusQuery);
      const pid = await (h.driver as QemuDriver).pid({ name: vmName! });
      expect(pid).toBeGreaterThan(0);
      process.kill(pid!, 'SIGKILL');
      const err = await handle.result().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(WorkflowFailedError);
      expect(((err as WorkflowFailedError).cause?.cause as ApplicationFailure).type).toBe('EkidenVmLost');
      await waitUntil(() => h.emulator.job(job.id)?.status, (s) => s === 'completed', 60_000, 'job ended');
      await expectNothingLeft();
    });
  });

  it('the worker killed with SIGKILL mid-job: the job still completes and everything is cleaned up', async () => {
    const config = {
      temporal: { address: inject('temporalAddress'), namespace: 'default', taskQueue: `ekiden-${h.hostId}` },
      host: { id: h.hostId, dataDir: join(h.dir, 'host'), pollIntervalMs: 1000, shutdownGraceMs: 1000 },
      driver: h.driverSettings,
      github: { apiUrl: h.emulatorUrl, scope: `repo:${REPO}`, auth: { tokenEnv: 'EKIDEN_TEST_GITHUB_TOKEN' }, writeSpacingMs: 0 },
    };
    const file = join(h.dir, 'worker.json');
    writeFileSync(file, JSON.stringify(config));
    const launch = () =>
      spawn(process.execPath, [join(ROOT, 'dist/workers/main.js'), '--config', file], { env: { ...process.env, EKIDEN_TEST_GITHUB_TOKEN: TOKEN }, stdio: 'ignore' });
    workerProc = launch();
    const job = h.emulator.queueJob({ repo: REPO, labels: ['ekiden-test'], steps: [{ run: 'sleep 15; echo survived' }] });
    const handle = await start('workerkill');
    await waitUntil(async () => (await handle.query(runnerStatusQuery)).phase, (p) => p === 'busy', 300_000, 'busy');
    const killed = new Promise((r) => workerProc!.once('exit', r));
    workerProc.kill('SIGKILL');
    await killed;
    workerProc = launch();
    const result = await handle.result();
    expect(result.outcome).toBe('completed');
    expect(result.vmNames).toHaveLength(1);
    expect(h.emulator.job(job.id)?.conclusion).toBe('success');
    await expectNothingLeft();
  });
});
