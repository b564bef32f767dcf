/**
 * The host's disk fills up during a clone: the host's VM root is a real tmpfs with room for the
 * image and not for a VM made from it. The clone fails once with one clear line (HostDiskFull,
 * naming the file it could not write), not five retries into a full disk; the runner cleans
 * up (no half-made VM, no registration, no credential); the pool backs off instead of looping;
 * and once the disk has room again (the tmpfs grown in place) the pool's next runner comes up.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolvePoolTuning } from '../../core/defaults.js';
import { poolWorkflowId } from '../../core/names.js';
import { SA_POOL } from '../../core/search-attributes.js';
import { FakeDriver } from '../../drivers/fake.js';
import { poolStatusQuery } from '../../workflows/api.js';
import type { PoolWorkflow } from '../../workflows/pool.js';
import { createHarness, IMAGE, temporalSkipReason, waitUntil, type Harness } from '../support/harness.js';

/** Whether this process may mount a small tmpfs (root with CAP_SYS_ADMIN: CI runs so). */
function mountProblem(): string | undefined {
  const dir = mkdtempSync(join(tmpdir(), 'ekiden-mount-probe-'));
  try {
    const r = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', dir], { encoding: 'utf8' });
    if (r.status !== 0) return `cannot mount a tmpfs here (${(r.stderr || r.error?.message || '').trim()}); the disk-full test needs root`;
    spawnSync('umount', [dir]);
    return undefined;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const skip = temporalSkipReason() ?? mountProblem();

describe.skipIf(skip)('host disk full during clone', () => {
  let h: Harness;
  let disk: string;
  let mounted = false;
  let driver: FakeDriver;
  const name = `full-${Date.now().toString(36).slice(-5)}`;

  const du = (dir: string) => Number(spawnSync('du', ['-sk', dir], { encoding: 'utf8' }).stdout.split('\t')[0]);
  const mount = (args: string[]) => {
    const r = spawnSync('mount', args, { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`mount ${args.join(' ')}: ${r.stderr}`);
  };

  beforeAll(async () => {
    h = await createHarness('diskfull');
    disk = join(h.dir, 'small-disk');
    mkdirSync(disk);
    // Room for the pulled image and half of it again: the clone (another copy) runs out.
    const imageKib = du(join(h.dir, 'image'));
    mount(['-t', 'tmpfs', '-o', `size=${Math.ceil(imageKib * 1.5)}k`, 'tmpfs', disk]);
    mounted = true;
    driver = new FakeDriver({ root: disk, images: { [IMAGE]: join(h.dir, 'image') } });
    await h.startWorker({ driver, fleet: { capacity: 2 } });
  });
  afterAll(async () => {
    const pool = h?.client.workflow.getHandle(poolWorkflowId(name));
    await pool?.cancel().catch(() => {});
    await pool?.result().catch(() => {});
    await h?.stopWorker();
    for (const vm of (await driver?.list().catch(() => [])) ?? []) {
      await driver.stop({ name: vm.name, timeoutMs: 1_000 }).catch(() => {});
      await driver.delete({ name: vm.name }).catch(() => {});
    }
    if (mounted) spawnSync('umount', ['-l', disk]);
    await h?.close();
  });

  it('fails the clone once with a clear reason, cleans up, backs off, and recovers when there is room', async () => {
    const pool = await h.client.workflow.start<typeof PoolWorkflow>('PoolWorkflow', {
      workflowId: poolWorkflowId(name),
      taskQueue: h.taskQueue,
      args: [{ config: h.poolConfig(name, { size: 1, max: 1, backoff: { initialMs: 2_000, maxMs: 8_000 } }), tuning: resolvePoolTuning({ hostRetryMs: 500 }) }],
      typedSearchAttributes: [{ key: SA_POOL, value: name }],
    });
    const failing = await waitUntil(() => pool.query(poolStatusQuery), (s) => s.consecutiveFailures >= 2, 60_000, 'two failed runners');
    const failure = failing.recentFailures.at(-1)!;
    expect(failure.message).toMatch(/^the host's disk is full: cannot clone ekiden-\S+ into \S*small-disk\/vms: ENOSPC: no space left on device, write; free space on the host, or lower its capacity$/);

    // The clone was tried once per runner (a final type), not retried into the full disk.
    const events = (await h.client.workflow.getHandle(failure.workflowId).fetchHistory()).events ?? [];
    const typeOf = new Map(events.filter((e) => e.activityTaskScheduledEventAttributes).map((e) => [Number(e.eventId), e.activityTaskScheduledEventAttributes!.activityType?.name]));
    const cloneStarts = events.filter((e) => e.activityTaskStartedEventAttributes && typeOf.get(Number(e.activityTaskStartedEventAttributes.scheduledEventId)) === 'cloneVm');
    expect(cloneStarts.map((e) => e.activityTaskStartedEventAttributes!.attempt)).toEqual([1]);
    expect(JSON.stringify(events)).toContain('EkidenHostDiskFull');

    // Backoff, not a loop: 2 s doubling to 8 s allows a handful of runners in 12 s, never dozens.
    const before = failing.failed;
    await new Promise((r) => setTimeout(r, 12_000));
    expect((await pool.query(poolStatusQuery)).failed - before).toBeLessThanOrEqual(4);

    // Room again: the pool's next runner comes up on the same host …
    mount(['-o', 'remount,size=64m', disk]);
    const idle = await waitUntil(() => pool.query(poolStatusQuery), (s) => s.counts.idle === 1 && s.runners.length === 1, 60_000, 'an idle runner once the disk has room');
    // … and every failed runner cleaned up after itself: one VM, one registration, one credential — the idle runner's.
    expect((await driver.list()).map((v) => v.name)).toHaveLength(1);
    expect(readdirSync(join(disk, 'vms')).filter((n) => n.startsWith('.tmp-'))).toEqual([]);
    expect(h.emulator.runners().filter((r) => r.name.startsWith(`ekiden-${name}-`))).toHaveLength(1);
    expect(readdirSync(join(h.dir, 'host', 'credentials'))).toHaveLength(1);
    expect(idle.failed).toBeGreaterThanOrEqual(2);
  });
});
