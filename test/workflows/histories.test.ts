/**
 * Histories: no secret the emulator issued appears in any workflow history, search attribute,
 * worker log line or process argv; and every recorded history replays against today's code.
 */
import { Worker } from '@temporalio/worker';
import type { WorkflowHandle } from '@temporalio/client';
import { readdirSync, readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runnerStatusQuery } from '../../workflows/api.js';
import type { RunnerWorkflow } from '../../workflows/runner.js';
import { recordedHistories, recordFixture } from '../support/fixtures.js';
import { BUNDLE, createHarness, REPO, temporalSkipReason, waitUntil, workerLogLines, type Harness } from '../support/harness.js';

const skip = temporalSkipReason();

function processArgvs(): string[] {
  const out: string[] = [];
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      out.push(readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' '));
    } catch {
      // process ended meanwhile
    }
  }
  return out;
}

describe.skipIf(skip)('histories, secrets and replay', () => {
  let h: Harness;
  const handles: Array<{ name: string; handle: WorkflowHandle<typeof RunnerWorkflow> }> = [];
  const argvSnapshots: string[] = [];

  beforeAll(async () => {
    h = await createHarness('hist');
    await h.startWorker();
    const run = async (name: string, credential: 'jit' | 'registration-token', idleTimeoutMs: number, queueJob: boolean) => {
      const handle = await h.client.workflow.start<typeof RunnerWorkflow>('RunnerWorkflow', {
        workflowId: `runner/test/hist-${name}-${Date.now()}`,
        taskQueue: `ekiden-${h.hostId}`,
        args: [{ spec: h.spec({ credential }), timing: h.timing({ idleTimeoutMs }) }],
      });
      handles.push({ name, handle });
      if (queueJob) {
        // Look at every process's argv while the runner is up and the job runs.
        await waitUntil(async () => (await handle.query(runnerStatusQuery)).phase, (p) => p === 'idle', 60_000, 'phase idle');
        argvSnapshots.push(...processArgvs());
        h.emulator.queueJob({ repo: REPO, labels: ['ekiden-test'], steps: [{ run: 'sleep 1' }] });
        await waitUntil(async () => (await handle.query(runnerStatusQuery)).phase, (p) => p === 'busy', 60_000, 'phase busy');
        argvSnapshots.push(...processArgvs());
      }
      await handle.result();
    };
    await run('jit', 'jit', 60_000, true);
    await run('regtoken', 'registration-token', 60_000, true);
    await run('idle', 'jit', 2_000, false);
  });
  afterAll(async () => {
    await h?.close();
  });

  it('the emulator issued secrets (sanity: the scan has something to find)', () => {
    expect(h.emulator.secrets().length).toBeGreaterThanOrEqual(4);
  });

  it('no secret in any workflow history or search attribute', async () => {
    const secrets = h.emulator.secrets();
    for (const { handle } of handles) {
      const text = JSON.stringify(await handle.fetchHistory()) + JSON.stringify((await handle.describe()).raw);
      for (const s of secrets) expect(text.includes(s), `secret in history of ${handle.workflowId}`).toBe(false);
    }
  });

  it('no secret in worker log lines', () => {
    expect(workerLogLines.length).toBeGreaterThan(10);
    const text = workerLogLines.join('\n');
    for (const s of h.emulator.secrets()) expect(text.includes(s)).toBe(false);
  });

  it('no secret in any process argv while runners were up', () => {
    expect(argvSnapshots.some((a) => a.includes('run.sh') || a.includes('emulator/runner'))).toBe(true);
    for (const s of h.emulator.secrets()) {
      expect(argvSnapshots.some((a) => a.includes(s))).toBe(false);
    }
  });

  it('recorded and fresh histories replay against the current workflow code', async () => {
    const fresh = await Promise.all(handles.map(async ({ name, handle }) => ({ name, workflowId: handle.workflowId, history: await handle.fetchHistory() })));
    for (const f of fresh) recordFixture(`runner-${f.name}`, f.history);
    const recorded = recordedHistories();
    expect(recorded.filter((r) => r.workflowId.includes('/runner-')).length).toBeGreaterThanOrEqual(3);
    const all = [...fresh.map(({ workflowId, history }) => ({ workflowId, history })), ...recorded];
    let replayed = 0;
    for await (const r of Worker.runReplayHistories({ workflowBundle: { codePath: BUNDLE } }, all)) {
      expect(r.error, `replay of ${r.workflowId}`).toBeUndefined();
      replayed++;
    }
    expect(replayed).toBe(all.length);
  });
});
