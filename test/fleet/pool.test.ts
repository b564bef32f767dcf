/**
 * PoolWorkflow and HostWorkflow on a real Temporal server with fake-driver hosts: scaling,
 * draining, host capacity shared between pools, demand from queued jobs, backoff on failing
 * runners and continue-as-new.
 */
import type { WorkflowHandle } from '@temporalio/client';
import { Worker } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hostWorkflowId, poolWorkflowId } from '../../core/names.js';
import { SA_POOL } from '../../core/search-attributes.js';
import { FakeDriver } from '../../drivers/fake.js';
import {
  drainPoolUpdate,
  hostStatusQuery,
  jobProgressedSignal,
  jobQueuedSignal,
  poolStatusQuery,
  resumePoolUpdate,
  scalePoolUpdate,
  type PoolConfig,
  type PoolScale,
  type PoolStatus,
} from '../../workflows/api.js';
import type { PoolWorkflow } from '../../workflows/pool.js';
import type { PoolTuning } from '../../workflows/api.js';
import { resolvePoolTuning } from '../../core/defaults.js';
import { silentLogger } from '../../webhooks/log.js';
import { closeServer, createWebhookServer, listenOn, WEBHOOK_PATH } from '../../webhooks/server.js';
import { recordFixture } from '../support/fixtures.js';
import { BUNDLE, createHarness, IMAGE, REPO, TOKEN, temporalSkipReason, waitUntil, type Harness } from '../support/harness.js';

const skip = temporalSkipReason();

describe.skipIf(skip)('pools on a real Temporal server', () => {
  let h: Harness;
  let seq = 0;
  const pools: WorkflowHandle<typeof PoolWorkflow>[] = [];

  beforeAll(async () => {
    h = await createHarness('pool');
    await h.startWorker({ fleet: { capacity: 4, labels: ['linux'] } });
    await waitUntil(() => h.client.workflow.getHandle(hostWorkflowId(h.hostId)).query(hostStatusQuery), (s) => s.state === 'up', 30_000, 'host up');
  });
  afterAll(async () => {
    for (const p of pools) {
      await p.cancel().catch(() => {});
      await p.result().catch(() => {});
    }
    await h?.close();
  });

  function config(o: Partial<PoolConfig> = {}): PoolConfig {
    return h.poolConfig(`p${++seq}-${Date.now().toString(36).slice(-4)}`, o);
  }


  async function startPool(c: PoolConfig, tuning: Partial<PoolTuning> = {}): Promise<WorkflowHandle<typeof PoolWorkflow>> {
    const handle = await h.client.workflow.start<typeof PoolWorkflow>('PoolWorkflow', {
      workflowId: poolWorkflowId(c.name),
      taskQueue: h.taskQueue,
      args: [{ config: c, tuning: resolvePoolTuning({ hostRetryMs: 500, ...tuning }) }],
      typedSearchAttributes: [{ key: SA_POOL, value: c.name }],
    });
    pools.push(handle);
    return handle;
  }

  const status = (p: WorkflowHandle<typeof PoolWorkflow>) => p.query(poolStatusQuery);
  const waitStatus = (p: WorkflowHandle<typeof PoolWorkflow>, accept: (s: PoolStatus) => boolean, what: string, timeoutMs = 60_000) =>
    waitUntil(() => status(p), accept, timeoutMs, what);
  const registrations = (pool: string) => h.emulator.runners().filter((r) => r.name.startsWith(`ekiden-${pool}-`));
  const vms = async (pool: string) => (await h.driver.list()).filter((v) => v.name.startsWith(`ekiden-${pool}-`));

  async function deletePool(p: WorkflowHandle<typeof PoolWorkflow>, pool: string): Promise<void> {
    await p.cancel();
    await p.result().catch(() => {});
    expect(await vms(pool)).toEqual([]);
    await waitUntil(() => registrations(pool), (r) => r.length === 0, 20_000, 'registrations gone');
  }

  it('scales up and down: retired runners are idle ones, deregistered and their VMs deleted', async () => {
    const c = config({ size: 1 });
    const p = await startPool(c);
    await waitStatus(p, (s) => s.counts.idle === 1, 'one idle runner');
    const up = await p.executeUpdate(scalePoolUpdate, { args: [{ size: 3 }] });
    expect(up.target).toBe(3);
    await waitStatus(p, (s) => s.counts.idle === 3, 'three idle runners');
    expect(registrations(c.name)).toHaveLength(3);

    const down = await p.executeUpdate(scalePoolUpdate, { args: [{ size: 1 }] });
    expect(down.target).toBe(1);
    const after = await waitStatus(p, (s) => s.runners.length === 1 && s.counts.idle === 1, 'back to one runner');
    expect(after.started).toBe(3); // scaling down started nothing new
    await waitUntil(() => vms(c.name), (v) => v.length === 1, 20_000, 'one VM left');
    await waitUntil(() => registrations(c.name), (r) => r.length === 1, 20_000, 'one registration left');
    await deletePool(p, c.name);
  });

  it('rejects invalid scaling with a reason and changes nothing', async () => {
    const c = config({ size: 0, max: 2 });
    const p = await startPool(c);
    const rejection = async (scale: PoolScale) => {
      const err = await p.executeUpdate(scalePoolUpdate, { args: [scale] }).then(() => undefined, (e: unknown) => e as Error);
      return (err?.cause as Error | undefined)?.message;
    };
    expect(await rejection({ size: 5 })).toMatch(/size: 5 is above max 2/);
    expect(await rejection({ max: -1 })).toMatch(/max: -1/);
    expect(await rejection({})).toMatch(/at least one of/);
    const s = await status(p);
    expect(s.config.size).toBe(0);
    expect(s.config.max).toBe(2);
    expect(s.started).toBe(0);
    await deletePool(p, c.name);
  });

  it('drain during a running job: the job finishes, no new runner starts, nothing leaks; resume starts again', async () => {
    const c = config({ size: 1 });
    const p = await startPool(c);
    await waitStatus(p, (s) => s.counts.idle === 1, 'idle runner');
    const job = h.emulator.queueJob({ repo: REPO, labels: c.labels, steps: [{ name: 'work', run: 'sleep 3; echo done' }] });
    await waitStatus(p, (s) => s.counts.busy === 1, 'runner busy');
    const drained = await p.executeUpdate(drainPoolUpdate);
    expect(drained.draining).toBe(true);
    expect(drained.target).toBe(0);
    const finished = await h.emulator.waitForJob(job.id, (j) => j.status === 'completed', 60_000);
    expect(finished.conclusion).toBe('success');
    const s = await waitStatus(p, (st) => st.runners.length === 0, 'no runners while drained');
    expect(s.started).toBe(1);
    expect(await vms(c.name)).toEqual([]);
    await waitUntil(() => registrations(c.name), (r) => r.length === 0, 20_000, 'no registrations');
    await new Promise((r) => setTimeout(r, 1_500));
    expect((await status(p)).started).toBe(1); // still none after a while

    await p.executeUpdate(resumePoolUpdate);
    await waitStatus(p, (st) => st.counts.idle === 1 && st.started === 2, 'resumed');
    await deletePool(p, c.name);
  });

  it('never exceeds a host capacity shared by two pools, and says why it is blocked', async () => {
    const hostId = `cap-${Date.now().toString(36).slice(-5)}`;
    const driver = new FakeDriver({ root: `${h.dir}/vms-${hostId}`, images: { [IMAGE]: `${h.dir}/image` } });
    const w = await h.createWorker({ serveHost: true, serveShared: false, driver, fleet: { hostId, capacity: 2 } });
    const running = w.run();
    await w.ready;
    try {
      const a = await startPool(config({ hosts: [hostId], size: 2 }));
      const b = await startPool(config({ hosts: [hostId], size: 2 }));
      const host = h.client.workflow.getHandle(hostWorkflowId(hostId));
      await waitUntil(() => host.query(hostStatusQuery), (s) => s.leases.length === 2, 30_000, 'host full');
      const [sa] = await waitUntil(
        () => Promise.all([status(a), status(b)]),
        ([x, y]) => x.runners.length + y.runners.length === 2,
        10_000,
        'two runners in all',
      );
      const short = sa.runners.length < 2 ? a : b;
      const blocked = await waitStatus(short, (s) => s.blocked !== undefined, 'blocked reason');
      expect(blocked.blocked).toMatch(new RegExp(`host ${hostId} is full \\(2/2\\)`));
      await new Promise((r) => setTimeout(r, 1_500));
      expect((await host.query(hostStatusQuery)).leases.length).toBe(2);
      expect((await driver.list()).length).toBeLessThanOrEqual(2);

      // Free the host: the other pool gets the slots.
      const full = short === a ? b : a;
      await full.cancel();
      await full.result().catch(() => {});
      await waitStatus(short, (s) => s.counts.idle === 2, 'blocked pool takes the freed slots');
      await short.cancel();
      await short.result().catch(() => {});
      expect(await driver.list()).toEqual([]);
      await waitUntil(() => host.query(hostStatusQuery), (s) => s.leases.length === 0, 20_000, 'leases given back');
    } finally {
      w.shutdown();
      await running;
    }
  });

  it('50 queued jobs start exactly as many runners as max allows; scales back when they are gone', async () => {
    const c = config({ size: 0, minIdle: 0, max: 3 });
    const p = await startPool(c);
    for (let i = 1; i <= 50; i++) await p.signal(jobQueuedSignal, { jobId: `burst-${c.name}-${i}`, labels: c.labels });
    // The same delivery again: counted once.
    for (let i = 1; i <= 10; i++) await p.signal(jobQueuedSignal, { jobId: `burst-${c.name}-${i}`, labels: c.labels });
    await waitStatus(p, (s) => s.counts.idle === 3, 'three idle runners');
    await new Promise((r) => setTimeout(r, 1_500));
    const s = await status(p);
    expect(s.pendingJobs).toBe(50);
    expect(s.target).toBe(3);
    expect(s.started).toBe(3);
    expect(registrations(c.name)).toHaveLength(3);
    for (let i = 1; i <= 50; i++) await p.signal(jobProgressedSignal, { jobId: `burst-${c.name}-${i}`, action: 'completed' });
    const idle = await waitStatus(p, (st) => st.runners.length === 0, 'all retired when demand is gone');
    expect(idle.started).toBe(3);
    expect(idle.pendingJobs).toBe(0);
    await waitUntil(() => registrations(c.name), (r) => r.length === 0, 20_000, 'no registrations');
    await deletePool(p, c.name);
  });

  it('a burst of 50 signed workflow_job webhooks runs every job with never more runners than max', async () => {
    const secret = 'burst-webhook-secret';
    const server = createWebhookServer({ secret, client: h.client, logger: silentLogger, poolCacheMs: 500 });
    const url = `${await listenOn(server, 0)}${WEBHOOK_PATH}`;
    const c = config({ size: 0, minIdle: 0, max: 3 });
    const p = await startPool(c);
    await waitStatus(p, (s) => s.runs === 1, 'pool started');
    let hook: number | undefined;
    try {
      // A delivery with a bad signature starts nothing.
      const bad = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-github-event': 'workflow_job', 'x-github-delivery': 'forged-1', 'x-hub-signature-256': `sha256=${'0'.repeat(64)}` },
        body: JSON.stringify({ action: 'queued', workflow_job: { id: 1, labels: c.labels } }),
      });
      expect(bad.status).toBe(401);
      expect((await status(p)).pendingJobs).toBe(0);

      hook = h.emulator.webhooks.add({ url, secret });
      const jobs = Array.from({ length: 50 }, (_, i) =>
        h.emulator.queueJob({ repo: REPO, name: `burst-${i}`, labels: c.labels, steps: [{ name: 'hi', run: 'echo hi' }] }),
      );
      let peak = 0;
      let peakLeases = 0;
      const host = h.client.workflow.getHandle(hostWorkflowId(h.hostId));
      const done = () => jobs.every((j) => h.emulator.jobs().find((x) => x.id === j.id)?.status === 'completed');
      const deadline = Date.now() + 300_000;
      while (!done() && Date.now() < deadline) {
        const s = await status(p);
        peak = Math.max(peak, s.counts.starting + s.counts.idle + s.counts.busy);
        peakLeases = Math.max(peakLeases, (await host.query(hostStatusQuery)).leases.filter((l) => l.pool === c.name).length);
        await new Promise((r) => setTimeout(r, 200));
      }
      const results = jobs.map((j) => h.emulator.jobs().find((x) => x.id === j.id));
      expect(results.filter((j) => j?.conclusion === 'success')).toHaveLength(50);
      expect(peak).toBe(3); // the burst filled the pool to max, and never beyond it
      // VM slots also count runners still cleaning up: bounded by the host's capacity (4).
      expect(peakLeases).toBeLessThanOrEqual(4);
      const after = await waitStatus(p, (s) => s.runners.length === 0, 'demand gone, runners retired');
      expect(after.pendingJobs).toBe(0);
      // Every job ran on its own runner; a handful more may start for demand counted twice in flight, never a runner per delivery.
      expect(after.started).toBeGreaterThanOrEqual(50);
      expect(after.started).toBeLessThanOrEqual(53);
      await waitUntil(() => registrations(c.name), (r) => r.length === 0, 20_000, 'no registrations');
      expect(await vms(c.name)).toEqual([]);
    } finally {
      if (hook !== undefined) h.emulator.webhooks.remove(hook);
      await closeServer(server);
    }
    await deletePool(p, c.name);
  }, 360_000);

  it('backs off exponentially when runners keep failing (no tight loop)', async () => {
    const c = config({ image: 'ekiden/no-such-image:1', size: 1, backoff: { initialMs: 1_000, maxMs: 60_000 } });
    const p = await startPool(c);
    const s = await waitStatus(p, (st) => st.consecutiveFailures >= 2, 'two failures', 60_000);
    expect(s.recentFailures[0]?.message).toMatch(/no-such-image/);
    expect(s.backoffUntil).toBeGreaterThan(Date.now() - 1_000);
    expect(s.blocked ?? '').toMatch(/backing off/);
    // 1 s then 2 s then 4 s …: in 5 more seconds at most 2 more attempts.
    const before = s.started;
    await new Promise((r) => setTimeout(r, 5_000));
    expect((await status(p)).started - before).toBeLessThanOrEqual(2);
    await deletePool(p, c.name);
  });

  it('pool and host histories replay against the current workflow code', async () => {
    const histories = [];
    for (const p of pools) histories.push({ workflowId: p.workflowId, history: await p.fetchHistory() });
    const host = h.client.workflow.getHandle(hostWorkflowId(h.hostId));
    histories.push({ workflowId: host.workflowId, history: await host.fetchHistory() });
    recordFixture('pool-scale', histories[0]!.history);
    recordFixture('host', histories.at(-1)!.history);
    let replayed = 0;
    for await (const r of Worker.runReplayHistories({ workflowBundle: { codePath: BUNDLE } }, histories)) {
      expect(r.error, `replay of ${r.workflowId}`).toBeUndefined();
      replayed++;
    }
    expect(replayed).toBe(histories.length);
    expect(replayed).toBeGreaterThanOrEqual(5);
  });

  it('no secret in pool, host or runner histories and search attributes', async () => {
    const secrets = [...h.emulator.secrets(), TOKEN, 'burst-webhook-secret'];
    expect(h.emulator.secrets().length).toBeGreaterThan(10); // the burst issued JIT configs
    const ids = [...pools.map((p) => p.workflowId), hostWorkflowId(h.hostId)];
    for await (const wf of h.client.workflow.list({ query: `WorkflowType = 'RunnerWorkflow' AND EkidenHost = '${h.hostId}'` })) ids.push(wf.workflowId);
    expect(ids.length).toBeGreaterThan(50);
    for (const id of ids) {
      const handle = h.client.workflow.getHandle(id);
      const text = JSON.stringify(await handle.fetchHistory()) + JSON.stringify((await handle.describe()).raw);
      for (const secret of secrets) expect(text.includes(secret), `secret in ${id}`).toBe(false);
    }
  });

  it('continue-as-new keeps runners, counters and settings', async () => {
    const c = config({ size: 2 });
    const p = await startPool(c, { maxHistoryEvents: 40 });
    const first = (await p.describe()).runId;
    await waitStatus(p, (s) => s.counts.idle === 2, 'two idle runners');
    await p.executeUpdate(scalePoolUpdate, { args: [{ minIdle: 1, max: 3 }] });
    const job = h.emulator.queueJob({ repo: REPO, labels: c.labels, steps: [{ name: 'quick', run: 'echo hi' }] });
    await h.emulator.waitForJob(job.id, (j) => j.status === 'completed', 60_000);
    const s = await waitStatus(p, (st) => st.runs >= 2 && st.completed >= 1 && st.counts.idle >= 2, 'after continue-as-new');
    expect(s.config.minIdle).toBe(1);
    expect(s.config.max).toBe(3);
    expect(s.started).toBeGreaterThanOrEqual(3);
    const desc = await p.describe();
    expect(desc.runId).not.toBe(first);
    expect(s.runners.length).toBeLessThanOrEqual(3);
    await deletePool(p, c.name);
  });
});
