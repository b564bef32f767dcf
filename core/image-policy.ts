/**
 * The rules of a host's image cache (host/image-cache.ts), as pure functions of what is in
 * the cache, what must stay, and the time passed in (`now`): deterministic, safe in workflow
 * code.
 *
 * - gcPlan: an entry may be deleted only when no VM uses it, nothing references it (a pool's
 *   image, or a catalog image's current or kept builds) and it has not been used for longer
 *   than the retention; deletable entries come least recently used first.
 * - admit: whether an image of `needBytes` fits both the cache budget and the disk (keeping
 *   `reserveBytes` free), evicting only what gcPlan allows, the fewest entries in gcPlan's
 *   order; otherwise a refusal that names the numbers and the fix.
 */
import { compareText } from './pool-policy.js';

export interface CacheEntry {
  /** `sha256:<hex>`. */
  digest: string;
  bytes: number;
  lastUsedMs: number;
  createdMs: number;
}

export interface GcInput {
  entries: readonly CacheEntry[];
  /** Digests pools and the catalog's current and kept builds name. */
  referenced: ReadonlySet<string>;
  /** Digests a VM on this host runs from. */
  inUse: ReadonlySet<string>;
  retentionMs: number;
  now: number;
}

export type KeepReason = 'in-use' | 'referenced' | 'recent';

export interface GcPlan {
  /** Least recently used first. */
  delete: Array<{ digest: string; bytes: number; reason: string }>;
  keep: Array<{ digest: string; reason: KeepReason }>;
}

/** `ms` as text for a reason, its two largest units: `3d4h`, `2h`, `5m12s`, `250ms`. */
export function formatAge(ms: number): string {
  if (ms < 1_000) return `${Math.max(0, Math.floor(ms))}ms`;
  const units: Array<[string, number]> = [['d', 86_400_000], ['h', 3_600_000], ['m', 60_000], ['s', 1_000]];
  let rest = ms;
  const parts: string[] = [];
  for (const [unit, size] of units) {
    const n = Math.floor(rest / size);
    if (n > 0 || parts.length > 0) parts.push(`${n}${unit}`);
    rest -= n * size;
  }
  return parts.slice(0, 2).filter((p) => !p.startsWith('0')).join('');
}

/** `bytes` as text for a reason: `512 B`, `1.5 KiB`, `20.0 GiB`. */
export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let i = 0;
  while (Math.abs(value) >= 1024 && i < units.length - 1) {
    value /= 1024;
    i++;
  }
  return i === 0 ? `${bytes} B` : `${value.toFixed(1)} ${units[i]}`;
}

/** Least recently used first; ties by creation, then digest. */
function lruOrder(a: CacheEntry, b: CacheEntry): number {
  return a.lastUsedMs - b.lastUsedMs || a.createdMs - b.createdMs || compareText(a.digest, b.digest);
}

export function gcPlan(input: GcInput): GcPlan {
  const plan: GcPlan = { delete: [], keep: [] };
  for (const e of [...input.entries].sort(lruOrder)) {
    const idle = input.now - e.lastUsedMs;
    if (input.inUse.has(e.digest)) plan.keep.push({ digest: e.digest, reason: 'in-use' });
    else if (input.referenced.has(e.digest)) plan.keep.push({ digest: e.digest, reason: 'referenced' });
    else if (idle <= input.retentionMs) plan.keep.push({ digest: e.digest, reason: 'recent' });
    else plan.delete.push({ digest: e.digest, bytes: e.bytes, reason: `unused for ${formatAge(idle)} (retention ${formatAge(input.retentionMs)}), not referenced, not in use` });
  }
  return plan;
}

export interface AdmitInput extends GcInput {
  needBytes: number;
  budgetBytes: number;
  freeDiskBytes: number;
  /** Disk space that must stay free after the image is in. */
  reserveBytes: number;
}

export type Admission = { ok: true; evict: string[] } | { ok: false; reason: string };

export const ADMIT_FIX = "raise the host's image budget, free disk, or retire images (drop them from pools and the catalog's kept builds)";

export function admit(input: AdmitInput): Admission {
  const used = input.entries.reduce((sum, e) => sum + e.bytes, 0);
  const fits = (freed: number) => used - freed + input.needBytes <= input.budgetBytes && input.freeDiskBytes + freed - input.needBytes >= input.reserveBytes;
  const evict: string[] = [];
  let freed = 0;
  if (fits(0)) return { ok: true, evict };
  const candidates = gcPlan(input).delete;
  for (const c of candidates) {
    evict.push(c.digest);
    freed += c.bytes;
    if (fits(freed)) return { ok: true, evict };
  }
  const short: string[] = [];
  const overBudget = used - freed + input.needBytes - input.budgetBytes;
  if (overBudget > 0) short.push(`${formatBytes(overBudget)} over the budget`);
  const shortDisk = input.reserveBytes - (input.freeDiskBytes + freed - input.needBytes);
  if (shortDisk > 0) short.push(`${formatBytes(shortDisk)} short of disk`);
  return {
    ok: false,
    reason:
      `image cache full: need ${formatBytes(input.needBytes)}, budget ${formatBytes(input.budgetBytes)}, used ${formatBytes(used)} ` +
      `(${formatBytes(freed)} evictable in ${candidates.length} entr${candidates.length === 1 ? 'y' : 'ies'}), free disk ${formatBytes(input.freeDiskBytes)} ` +
      `(reserve ${formatBytes(input.reserveBytes)}): ${short.join(' and ')} even after evicting everything allowed; ${ADMIT_FIX}`,
  };
}
