/**
 * The image cache's rules (core/image-policy.ts) as tables: which entry GC may delete (every
 * combination of in use × referenced × idle against the retention), in which order, and
 * admission against the budget and the disk — evicting only what GC allows, as few as needed,
 * and a refusal naming the numbers and the fix.
 */
import { describe, expect, it } from 'vitest';
import { ADMIT_FIX, admit, formatAge, formatBytes, gcPlan, type CacheEntry, type KeepReason } from '../../core/image-policy.js';

const NOW = 10 * 86_400_000;
const HOUR = 3_600_000;
const RETENTION = 24 * HOUR;
const GiB = 1024 ** 3;

const d = (n: number) => `sha256:${String(n).padStart(64, '0')}`;
const entry = (n: number, idleMs: number, bytes = GiB, createdMs = 0): CacheEntry => ({ digest: d(n), bytes, lastUsedMs: NOW - idleMs, createdMs });

describe('gcPlan: what may be deleted', () => {
  // [in use, referenced, idle] → kept with reason, or deleted (undefined)
  const CELLS: Array<[boolean, boolean, 'fresh' | 'at-retention' | 'stale', KeepReason | undefined]> = [
    [false, false, 'fresh', 'recent'],
    [false, false, 'at-retention', 'recent'],
    [false, false, 'stale', undefined],
    [false, true, 'fresh', 'referenced'],
    [false, true, 'stale', 'referenced'],
    [true, false, 'fresh', 'in-use'],
    [true, false, 'stale', 'in-use'],
    [true, true, 'stale', 'in-use'],
  ];
  const IDLE = { fresh: HOUR, 'at-retention': RETENTION, stale: RETENTION + 1 };
  it.each(CELLS)('in use %s, referenced %s, %s → %s', (inUse, referenced, idle, kept) => {
    const e = entry(1, IDLE[idle]);
    const plan = gcPlan({ entries: [e], inUse: new Set(inUse ? [e.digest] : []), referenced: new Set(referenced ? [e.digest] : []), retentionMs: RETENTION, now: NOW });
    if (kept) {
      expect(plan).toEqual({ delete: [], keep: [{ digest: e.digest, reason: kept }] });
    } else {
      expect(plan.keep).toEqual([]);
      expect(plan.delete).toEqual([{ digest: e.digest, bytes: GiB, reason: 'unused for 1d (retention 1d), not referenced, not in use' }]);
    }
  });

  it('least recently used first; ties by creation, then digest', () => {
    const entries = [entry(3, 2 * RETENTION, GiB, 5), entry(1, 3 * RETENTION), entry(2, 2 * RETENTION, GiB, 5), entry(4, 2 * RETENTION, GiB, 1), entry(5, HOUR)];
    const plan = gcPlan({ entries, inUse: new Set(), referenced: new Set(), retentionMs: RETENTION, now: NOW });
    expect(plan.delete.map((p) => p.digest)).toEqual([d(1), d(4), d(2), d(3)]);
    expect(plan.keep).toEqual([{ digest: d(5), reason: 'recent' }]);
  });

  it('an empty cache plans nothing; the input is not changed', () => {
    expect(gcPlan({ entries: [], inUse: new Set(), referenced: new Set(), retentionMs: RETENTION, now: NOW })).toEqual({ delete: [], keep: [] });
    const entries = [entry(2, 2 * RETENTION), entry(1, 3 * RETENTION)];
    gcPlan({ entries, inUse: new Set(), referenced: new Set(), retentionMs: RETENTION, now: NOW });
    expect(entries.map((e) => e.digest)).toEqual([d(2), d(1)]);
  });
});

describe('admit: room within the budget and the disk', () => {
  const base = { inUse: new Set<string>(), referenced: new Set<string>(), retentionMs: RETENTION, now: NOW, reserveBytes: GiB };
  const stale = (n: number, bytes = GiB, extraIdle = 0) => entry(n, RETENTION + 1 + extraIdle, bytes);
  it.each([
    ['empty cache, room', { needBytes: 5 * GiB, entries: [], budgetBytes: 10 * GiB, freeDiskBytes: 100 * GiB }, []],
    ['exactly the budget', { needBytes: 5 * GiB, entries: [entry(1, HOUR, 5 * GiB)], budgetBytes: 10 * GiB, freeDiskBytes: 100 * GiB }, []],
    ['exactly the reserve left on disk', { needBytes: 5 * GiB, entries: [], budgetBytes: 10 * GiB, freeDiskBytes: 6 * GiB }, []],
    ['over budget: evicts the least recently used stale entry only', { needBytes: 2 * GiB, entries: [stale(1, 2 * GiB), stale(2, 2 * GiB, HOUR), entry(3, HOUR, 6 * GiB)], budgetBytes: 10 * GiB, freeDiskBytes: 100 * GiB }, [d(2)]],
    ['over budget: evicts as many as needed, in order', { needBytes: 4 * GiB, entries: [stale(1, 2 * GiB), stale(2, 2 * GiB, HOUR), entry(3, HOUR, 6 * GiB)], budgetBytes: 10 * GiB, freeDiskBytes: 100 * GiB }, [d(2), d(1)]],
    ['short of disk: evicts to free it', { needBytes: 4 * GiB, entries: [stale(1, 3 * GiB)], budgetBytes: 100 * GiB, freeDiskBytes: 4 * GiB }, [d(1)]],
    ['skips in-use and referenced entries', { needBytes: 2 * GiB, entries: [stale(1, 2 * GiB, 3 * HOUR), stale(2, 2 * GiB, 2 * HOUR), stale(3, 2 * GiB)], budgetBytes: 6 * GiB, freeDiskBytes: 100 * GiB, inUse: new Set([d(1)]), referenced: new Set([d(2)]) }, [d(3)]],
  ])('%s', (_why, input, evict) => {
    expect(admit({ ...base, ...input })).toEqual({ ok: true, evict });
  });

  it.each([
    [
      'larger than the whole budget',
      { needBytes: 20 * GiB, entries: [], budgetBytes: 10 * GiB, freeDiskBytes: 100 * GiB },
      'image cache full: need 20.0 GiB, budget 10.0 GiB, used 0 B (0 B evictable in 0 entries), free disk 100.0 GiB (reserve 1.0 GiB): 10.0 GiB over the budget even after evicting everything allowed',
    ],
    [
      'what could go is in use or referenced',
      { needBytes: 4 * GiB, entries: [stale(1, 4 * GiB), stale(2, 4 * GiB), stale(3, 1 * GiB)], budgetBytes: 10 * GiB, freeDiskBytes: 100 * GiB, inUse: new Set([d(1)]), referenced: new Set([d(2)]) },
      'image cache full: need 4.0 GiB, budget 10.0 GiB, used 9.0 GiB (1.0 GiB evictable in 1 entry), free disk 100.0 GiB (reserve 1.0 GiB): 2.0 GiB over the budget even after evicting everything allowed',
    ],
    [
      'recent entries are not evicted',
      { needBytes: 4 * GiB, entries: [entry(1, HOUR, 8 * GiB)], budgetBytes: 10 * GiB, freeDiskBytes: 100 * GiB },
      'image cache full: need 4.0 GiB, budget 10.0 GiB, used 8.0 GiB (0 B evictable in 0 entries), free disk 100.0 GiB (reserve 1.0 GiB): 2.0 GiB over the budget even after evicting everything allowed',
    ],
    [
      'the disk is too full',
      { needBytes: 4 * GiB, entries: [], budgetBytes: 10 * GiB, freeDiskBytes: 3 * GiB },
      'image cache full: need 4.0 GiB, budget 10.0 GiB, used 0 B (0 B evictable in 0 entries), free disk 3.0 GiB (reserve 1.0 GiB): 2.0 GiB short of disk even after evicting everything allowed',
    ],
    [
      'both',
      { needBytes: 12 * GiB, entries: [stale(1, 1 * GiB)], budgetBytes: 10 * GiB, freeDiskBytes: 5 * GiB },
      'image cache full: need 12.0 GiB, budget 10.0 GiB, used 1.0 GiB (1.0 GiB evictable in 1 entry), free disk 5.0 GiB (reserve 1.0 GiB): 2.0 GiB over the budget and 7.0 GiB short of disk even after evicting everything allowed',
    ],
  ])('refused: %s', (_why, input, reason) => {
    expect(admit({ ...base, ...input })).toEqual({ ok: false, reason: `${reason}; ${ADMIT_FIX}` });
  });

  it('the fix names the three ways out', () => {
    expect(ADMIT_FIX).toMatch(/raise the host's image budget, free disk, or retire images/);
  });
});

describe('reason text', () => {
  it.each([
    [0, '0ms'], [250, '250ms'], [1_000, '1s'], [90_000, '1m30s'], [HOUR, '1h'], [HOUR + 1_000, '1h'], [26 * HOUR, '1d2h'], [3 * 86_400_000 + 5 * 60_000, '3d'],
  ])('age %d → %s', (ms, text) => {
    expect(formatAge(ms)).toBe(text);
  });
  it.each([[0, '0 B'], [1023, '1023 B'], [1536, '1.5 KiB'], [5 * GiB, '5.0 GiB'], [2 * 1024 * GiB, '2.0 TiB']])('bytes %d → %s', (bytes, text) => {
    expect(formatBytes(bytes)).toBe(text);
  });
});
