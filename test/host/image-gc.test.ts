/**
 * The host's image-cache GC round (collectImages, run on each host by the fleet round):
 * deletes only entries nothing references and no VM here uses, once unused past the
 * retention; deletes nothing without the fleet's complete references; reports what the cache
 * holds against its budget. Real cache on disk; the wiring (fleet schedule → FleetRoundWorkflow
 * → a real host worker → HostStatus.images) is checked by test/fleet/control-plane.test.ts.
 */
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createImageHostActivities } from '../../activities/images.js';
import { ImageCache } from '../../host/image-cache.js';

const base = mkdtempSync(join(tmpdir(), 'ekiden-image-gc-'));
afterAll(() => rmSync(base, { recursive: true, force: true }));
const env = new MockActivityEnvironment(undefined, { logger: new DefaultLogger('WARN', () => {}) });
const digest = (c: string) => `sha256:${c.repeat(64)}`;
const DAY = 24 * 3_600_000;

describe('image cache GC round', () => {
  it('deletes only what is unreferenced, unused by a VM and past the retention; without references it deletes nothing', async () => {
    let now = Date.now();
    const cache = new ImageCache({ root: join(base, 'cache'), budgetBytes: 10 * 1024 ** 2, retentionMs: 7 * DAY, freeBytes: async () => 1024 ** 4, now: () => now });
    const none = { inUse: new Set<string>(), referenced: new Set<string>() };
    for (const c of ['a', 'b', 'c', 'd']) {
      await cache.ensure(digest(c), 64 * 1024, async (dir) => writeFileSync(join(dir, 'disk.qcow2'), Buffer.alloc(64 * 1024, c)), none);
    }
    let inUse = new Set([digest('b')]);
    const acts = createImageHostActivities({ hostId: 'gc-host', dataDir: join(base, 'data'), qemuImagesDir: join(base, 'images'), cache, env: {}, inUse: async () => inUse });
    const referenced = [digest('a')];
    const round = (args: { referenced?: string[] }) => env.run(() => acts.collectImages(args)) as ReturnType<typeof acts.collectImages>;

    // Within the retention: nothing goes, whatever references say.
    const fresh = await round({ referenced });
    expect(fresh.deleted).toEqual([]);
    expect(fresh.held.map((e) => e.digest).sort()).toEqual(['a', 'b', 'c', 'd'].map(digest));
    expect(fresh.budgetBytes).toBe(10 * 1024 ** 2);
    expect(fresh.retentionMs).toBe(7 * DAY);
    expect(fresh.bytes).toBe(fresh.held.reduce((n, e) => n + e.bytes, 0));
    expect(fresh.bytes).toBeGreaterThanOrEqual(4 * 64 * 1024);

    now += 8 * DAY;
    await cache.touch(digest('d')); // used again just now: kept by its retention
    // Past the retention, but the fleet's references are unknown: nothing is deleted.
    const blind = await round({});
    expect(blind.deleted).toEqual([]);
    expect(blind.gcSkipped).toMatch(/could not all be read/);
    expect(blind.held).toHaveLength(4);

    const third = await round({ referenced });
    expect(third.deleted).toEqual([digest('c')]);
    expect(third.gcSkipped).toBeUndefined();
    expect(third.held.map((e) => e.digest).sort()).toEqual(['a', 'b', 'd'].map(digest));

    // The VM on b is gone: b goes at the next round; a stays referenced.
    inUse = new Set();
    now += 8 * DAY;
    const later = await round({ referenced });
    expect(later.deleted.sort()).toEqual([digest('b'), digest('d')]);
    expect(later.held.map((e) => e.digest)).toEqual([digest('a')]);
  });

  it('a host without an image cache reports an empty one', async () => {
    const acts = createImageHostActivities({ hostId: 'no-cache', dataDir: join(base, 'd2'), qemuImagesDir: join(base, 'images'), env: {} });
    expect(await (env.run(() => acts.collectImages({ referenced: [] })) as ReturnType<typeof acts.collectImages>)).toEqual({ held: [], bytes: 0, budgetBytes: 0, retentionMs: 0, deleted: [] });
  });
});
