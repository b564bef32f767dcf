/**
 * The worker process is killed with SIGKILL at each step of a runner's life — at the worst
 * moment, after the step did its work but before the server heard — and restarted. The
 * runner must still finish its job with exactly one VM, and leave no VM, registration or
 * credential behind.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { runnerStatusQuery } from '../../workflows/api.js';
import { inject } from 'vitest';
import type { RunnerWorkflow } from '../../workflows/runner.js';
import { PAUSE_MARKER } from '../../workers/test-hooks.js';
import { createHarness, REPO, ROOT, TOKEN, temporalSkipReason, type Harness } from '../support/harness.js';

const skip = temporalSkipReason();

interface WorkerProc {
  child: ChildProcess;
  stderr: string[];
}

describe.skipIf(skip)('host worker killed with SIGKILL at each step', () => {
  let h: Harness;
  let worker: WorkerProc | undefined;
  beforeAll(async () => {
    h = await createHarness('kill');
  });
  afterEach(() => {
    worker?.child.kill('SIGKILL');
    worker = undefined;
  });
  afterAll(async () => {
    await h?.close();
  });

  function startWorkerProcess(pauseAfter: string[]): WorkerProc {
    const config = {
      temporal: { address: inject('temporalAddress'), namespace: 'default', taskQueue: `ekiden-${h.hostId}` },
      host: { id: h.hostId, dataDir: join(h.dir, 'host'), pollIntervalMs: 200, shutdownGraceMs: 1000 },
      driver: h.driverSettings,
      github: { apiUrl: h.emulatorUrl, scope: `repo:${REPO}`, auth: { tokenEnv: 'EKIDEN_TEST_GITHUB_TOKEN' }, writeSpacingMs: 0 },
      ...(pauseAfter.length ? { testing: { pauseAfter } } : {}),
    };
    const file = join(h.dir, `worker-${Date.now()}.json`);
    writeFileSync(file, JSON.stringify(config));
    const child = spawn(process.execPath, [join(ROOT, 'dist/workers/main.js'), '--config', file], {
      env: { ...process.env, EKIDEN_TEST_GITHUB_TOKEN: TOKEN },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    const stderr: string[] = [];
    child.stderr!.setEncoding('utf8').on('data', (d: string) => stderr.push(...d.split('\n')));
    return { child, stderr };
  }

  async function killNow(w: WorkerProc): Promise<void> {
    const exited = new Promise((r) => w.child.once('exit', r));
    w.child.kill('SIGKILL');
    await exited;
  }

  const cases: Array<{ step: string; killWhen: 'paused' | 'idle' | 'busy' }> = [
    { step: 'ensureImage', killWhen: 'paused' },
    { step: 'obtainRunnerCredential', killWhen: 'paused' },
    { step: 'cloneVm', killWhen: 'paused' },
    { step: 'bootVm', killWhen: 'paused' },
    { step: 'launchRunner', killWhen: 'paused' },
    { step: 'awaitJobStart', killWhen: 'idle' },
    { step: 'awaitRunnerExit', killWhen: 'busy' },
    { step: 'awaitRunnerExit', killWhen: 'paused' },
    { step: 'destroyVm', killWhen: 'paused' },
    { step: 'removeRunner', killWhen: 'paused' },
  ];

  it.each(cases)('killed during $step: the runner completes with one VM and leaves nothing', async ({ step, killWhen }) => {
    worker = startWorkerProcess(killWhen === 'paused' ? [step] : []);
    // For the idle case the job arrives only after the restart; otherwise it waits already.
    const jobSteps = killWhen === 'busy' ? [{ run: 'sleep 6; echo survived > proof.txt' }] : [{ run: 'true' }];
    let job = killWhen === 'idle' ? undefined : h.emulator.queueJob({ repo: REPO, labels: ['ekiden-test'], steps: jobSteps });
    const handle = await h.client.workflow.start<typeof RunnerWorkflow>('RunnerWorkflow', {
      workflowId: `runner/test/kill-${step}-${Date.now()}`,
      taskQueue: `ekiden-${h.hostId}`,
      args: [{ spec: h.spec(), timing: h.timing() }],
    });
    if (killWhen === 'paused') {
      await expect.poll(() => worker!.stderr.some((l) => l.startsWith(`${PAUSE_MARKER} ${step}`)), { timeout: 60_000, interval: 100 }).toBe(true);
    } else {
      await expect
        .poll(async () => (await handle.query(runnerStatusQuery)).phase, { timeout: 60_000, interval: 100 })
        .toBe(killWhen);
      if (killWhen === 'busy') await new Promise((r) => setTimeout(r, 1_000));
    }
    await killNow(worker);
    worker = startWorkerProcess([]);
    if (!job) job = h.emulator.queueJob({ repo: REPO, labels: ['ekiden-test'], steps: jobSteps });
    const result = await handle.result();
    expect(result.outcome).toBe('completed');
    expect(result.vmNames).toHaveLength(1);
    expect(result.leftovers).toEqual([]);
    expect(h.emulator.jobs().find((j) => j.id === job!.id)?.conclusion).toBe('success');
    expect(await h.driver.list()).toEqual([]);
    expect(h.emulator.runners()).toEqual([]);
    expect(readdirSync(join(h.dir, 'host', 'credentials'))).toEqual([]);
  });
});
