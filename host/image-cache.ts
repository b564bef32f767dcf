/**
 * A host's content-addressed image store: `<root>/sha256/<hex>/` holds one image, a directory
 * whose content the caller fills (and whose digest the caller verifies; the cache trusts the
 * digest it is given). What it guarantees, also across processes on one host:
 *
 * - An entry is present only when complete: a fill goes into `<root>/tmp/<hex>.<pid>.<random>`
 *   and is renamed into place in one step; a fill that throws leaves nothing behind (its error
 *   propagates unchanged); a process killed mid-fill leaves only its tmp dir, removed by the
 *   next ensure (or gc) of any process once that pid is gone.
 * - One fill per digest at a time: in a process by a keyed lock, between processes by
 *   `<root>/locks/<hex>.lock`, created with O_EXCL and holding the owner's pid (and, on
 *   Linux, its start time); the lock of a dead process is taken over.
 * - Admission before a fill (core/image-policy.ts admit): the image must fit the budget and
 *   the disk (free space by statfs, keeping `reserveBytes`), counting fills in progress;
 *   room is made only by evicting what gcPlan allows, else an ImageCacheFullError. Admissions
 *   are serialised by `<root>/locks/admit.lock`.
 * - Deletion (gc, eviction) only by gcPlan, under the entry's lock: the directory is renamed
 *   into `<root>/trash/` first and removed after, so a half-deleted entry never looks present.
 *
 * Each entry's size (its disk usage, hard links counted once) and times are kept in
 * `<root>/meta/<hex>.json`, written atomically. No console output: `log` gets the events.
 */
import { randomBytes } from 'node:crypto';
import { constants as fsConstants, type Dirent } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { admit, gcPlan, type CacheEntry } from '../core/image-policy.js';
import { KeyedLock } from '../core/keyed-lock.js';

export interface ImageCacheOptions {
  root: string;
  budgetBytes: number;
  /** Disk space left free after a fill; default 0. */
  reserveBytes?: number;
  /** How long an unused, unreferenced entry is kept. */
  retentionMs: number;
  log?: (msg: string, fields?: Record<string, unknown>) => void;
  now?: () => number;
  /** Free bytes on the file system of `dir`; default statfs (blocks available to this user). */
  freeBytes?: (dir: string) => Promise<number>;
}

export interface ImageCacheUse {
  referenced: Set<string>;
  inUse: Set<string>;
}

/** The image does not fit: `reason` (from core/image-policy.ts admit) names the numbers and the fix. Retrying cannot help. */
export class ImageCacheFullError extends Error {
  override readonly name = 'ImageCacheFullError';
  readonly retryable = false;
  constructor(
    readonly digest: string,
    readonly reason: string,
  ) {
    super(`image ${digest}: ${reason}`);
  }
}

const DIGEST = /^sha256:([0-9a-f]{64})$/;
const HEX = /^[0-9a-f]{64}$/;
/** `<hex>.<pid>.<random>` (tmp dirs, trash) with an optional `.json` (metadata being written). */
const SCRATCH = /^([0-9a-f]{64})\.([1-9][0-9]{0,9})\.[0-9a-f]+(\.json)?$/;
const LOCK_POLL_MS = 25;
const ADMIT_LOCK = 'admit';

function codeOf(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

function hexOf(digest: string): string {
  const m = DIGEST.exec(digest);
  if (!m) throw new TypeError(`image cache: ${JSON.stringify(digest)} is not a digest; give sha256: and 64 lower-case hex digits`);
  return m[1]!;
}

// ───────────────────────────── processes ─────────────────────────────

async function procStat(pid: number): Promise<string[] | undefined> {
  try {
    const stat = await fs.readFile(`/proc/${pid}/stat`, 'utf8');
    // After the command (which may hold spaces and parentheses): state is field 3, starttime field 22.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return undefined;
  }
}

async function startTime(pid: number): Promise<string> {
  return (await procStat(pid))?.[19] ?? '';
}

/** Whether `pid` is a live process (a zombie is not) that started at `started`, when that is known. */
async function isAlive(pid: number, started: string): Promise<boolean> {
  try {
    process.kill(pid, 0);
  } catch (err) {
    if (codeOf(err) !== 'EPERM') return false;
  }
  const fields = await procStat(pid);
  if (fields) {
    if (fields[0] === 'Z' || fields[0] === 'X') return false;
    if (started && fields[19] && fields[19] !== started) return false;
  }
  return true;
}

function delay(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason as Error);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason as Error);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

// ───────────────────────────── lock files ─────────────────────────────

interface Holder {
  pid: number;
  started: string;
  needBytes: number;
  raw: string;
}

async function readHolder(file: string): Promise<Holder | 'gone' | 'unreadable'> {
  let raw: string;
  try {
    raw = await fs.readFile(file, 'utf8');
  } catch (err) {
    if (codeOf(err) === 'ENOENT') return 'gone';
    throw err;
  }
  const [pidLine = '', started = '', need = '0'] = raw.split('\n');
  if (!/^[1-9][0-9]{0,9}$/.test(pidLine) || !raw.endsWith('\n')) return 'unreadable';
  return { pid: Number(pidLine), started: started.trim(), needBytes: Number(need) || 0, raw };
}

async function createExclusive(file: string, content: string): Promise<boolean> {
  let handle: fs.FileHandle;
  try {
    handle = await fs.open(file, fsConstants.O_CREAT | fsConstants.O_EXCL | fsConstants.O_WRONLY, 0o644);
  } catch (err) {
    if (codeOf(err) === 'EEXIST') return false;
    throw err;
  }
  try {
    await handle.writeFile(content);
  } finally {
    await handle.close();
  }
  return true;
}

async function ageMs(file: string): Promise<number> {
  try {
    return Date.now() - (await fs.stat(file)).mtimeMs;
  } catch {
    return 0;
  }
}

/**
 * Removes the lock whose content was `stale`, under a guard file, so two processes taking over
 * the same stale lock cannot remove each other's fresh one.
 */
async function removeStale(file: string, stale: string, mine: string): Promise<void> {
  const guard = `${file}.takeover`;
  if (!(await createExclusive(guard, mine))) {
    const holder = await readHolder(guard);
    if (holder === 'gone') return;
    if ((holder === 'unreadable' && (await ageMs(guard)) > 2_000) || (holder !== 'unreadable' && !(await isAlive(holder.pid, holder.started)))) {
      await fs.rm(guard, { force: true });
    }
    return;
  }
  try {
    const current = await fs.readFile(file, 'utf8').catch(() => undefined);
    if (current === stale) await fs.rm(file, { force: true });
  } finally {
    await fs.rm(guard, { force: true });
  }
}

type Release = () => Promise<void>;

/**
 * Takes `file`; with `wait`, polls while a live process holds it (until `signal`), else gives
 * up at once (undefined). A dead holder's lock is taken over.
 */
async function takeLock(file: string, content: string, opts: { wait: boolean; signal?: AbortSignal; onTakeover?: (pid: number) => void }): Promise<Release | undefined> {
  for (;;) {
    opts.signal?.throwIfAborted();
    if (await createExclusive(file, content)) {
      return async () => {
        const current = await fs.readFile(file, 'utf8').catch(() => undefined);
        if (current === content) await fs.rm(file, { force: true });
      };
    }
    const holder = await readHolder(file);
    if (holder === 'gone') continue;
    if (holder === 'unreadable') {
      if ((await ageMs(file)) > 2_000) {
        const raw = await fs.readFile(file, 'utf8').catch(() => undefined);
        if (raw !== undefined) await removeStale(file, raw, content);
        continue;
      }
    } else if (!(await isAlive(holder.pid, holder.started))) {
      opts.onTakeover?.(holder.pid);
      await removeStale(file, holder.raw, content);
      continue;
    }
    if (!opts.wait) return undefined;
    await delay(LOCK_POLL_MS, opts.signal);
  }
}

// ───────────────────────────── sizes ─────────────────────────────

/** Disk usage of `dir` in bytes (allocated blocks, or the size where blocks are unknown), each inode once, symlinks not followed. */
async function diskUsage(dir: string): Promise<number> {
  const seen = new Set<string>();
  let total = 0;
  const walk = async (p: string): Promise<void> => {
    const st = await fs.lstat(p, { bigint: false });
    const key = `${st.dev}:${st.ino}`;
    if (!seen.has(key)) {
      seen.add(key);
      total += typeof st.blocks === 'number' && st.blocks >= 0 && process.platform !== 'win32' ? st.blocks * 512 : st.size;
    }
    if (st.isDirectory()) {
      const names = await fs.readdir(p);
      for (const name of names) await walk(path.join(p, name));
    }
  };
  await walk(dir);
  return total;
}

async function defaultFreeBytes(dir: string): Promise<number> {
  const s = await fs.statfs(dir);
  return s.bavail * s.bsize;
}

async function fsyncDir(dir: string): Promise<void> {
  try {
    const h = await fs.open(dir, 'r');
    try {
      await h.sync();
    } finally {
      await h.close();
    }
  } catch {
    // Best effort: some file systems refuse to sync a directory.
  }
}

// ───────────────────────────── the cache ─────────────────────────────

/** Scratch paths (tmp dirs, metadata being written, trash) in use by this process, whichever ImageCache made them. */
const activeScratch = new Set<string>();

interface Meta {
  digest: string;
  bytes: number;
  createdMs: number;
  lastUsedMs: number;
}

export class ImageCache {
  private readonly root: string;
  private readonly opts: ImageCacheOptions;
  private readonly now: () => number;
  private readonly freeBytes: (dir: string) => Promise<number>;
  private readonly keyed = new KeyedLock();
  private ready: Promise<void> | undefined;
  private pidStart: Promise<string> | undefined;

  constructor(opts: ImageCacheOptions) {
    for (const key of ['budgetBytes', 'retentionMs', 'reserveBytes'] as const) {
      const v = opts[key];
      if (v !== undefined && (typeof v !== 'number' || !Number.isFinite(v) || v < 0)) throw new TypeError(`image cache: ${key} ${String(v)} is not a number of at least 0`);
    }
    this.opts = opts;
    this.root = path.resolve(opts.root);
    this.now = opts.now ?? Date.now;
    this.freeBytes = opts.freeBytes ?? defaultFreeBytes;
  }

  dir(digest: string): string {
    return path.join(this.root, 'sha256', hexOf(digest));
  }

  /** Most bytes the cache holds. */
  get budgetBytes(): number {
    return this.opts.budgetBytes;
  }

  /** How long an unused, unreferenced entry is kept. */
  get retentionMs(): number {
    return this.opts.retentionMs;
  }

  async has(digest: string): Promise<boolean> {
    try {
      return (await fs.stat(this.dir(digest))).isDirectory();
    } catch (err) {
      if (codeOf(err) === 'ENOENT' || codeOf(err) === 'ENOTDIR') return false;
      throw err;
    }
  }

  async list(): Promise<CacheEntry[]> {
    await this.init();
    const names = (await fs.readdir(path.join(this.root, 'sha256'), { withFileTypes: true })) as Dirent[];
    const entries: CacheEntry[] = [];
    for (const d of names) {
      if (!d.isDirectory() || !HEX.test(d.name)) continue;
      const entry = await this.entry(d.name);
      if (entry) entries.push(entry);
    }
    return entries.sort((a, b) => (a.digest < b.digest ? -1 : a.digest > b.digest ? 1 : 0));
  }

  async touch(digest: string): Promise<void> {
    const hex = hexOf(digest);
    await this.init();
    const entry = await this.entry(hex);
    if (!entry) return;
    await this.writeMeta(hex, { ...entry, lastUsedMs: Math.max(entry.lastUsedMs, this.now()) });
  }

  async ensure(
    digest: string,
    needBytes: number,
    fill: (tmpDir: string, signal?: AbortSignal) => Promise<void>,
    opts: ImageCacheUse & { signal?: AbortSignal },
  ): Promise<{ dir: string; fetched: boolean; evicted: string[] }> {
    const hex = hexOf(digest);
    if (!Number.isSafeInteger(needBytes) || needBytes < 0) throw new TypeError(`image cache: needBytes ${needBytes} is not a whole number of bytes`);
    await this.init();
    const dir = this.dir(digest);
    return this.keyed.run(hex, async () => {
      const release = (await this.lock(hex, needBytes, { wait: true, signal: opts.signal }))!;
      try {
        if (await this.has(digest)) {
          await this.touch(digest);
          return { dir, fetched: false, evicted: [] };
        }
        await this.sweep();
        const evicted = await this.admitAndEvict(digest, needBytes, opts);
        const tmp = await this.scratch('tmp', hex);
        const started = this.now();
        try {
          await fs.mkdir(tmp);
          await fill(tmp, opts.signal);
          const bytes = await diskUsage(tmp);
          const at = this.now();
          await this.writeMeta(hex, { digest, bytes, createdMs: at, lastUsedMs: at });
          await fs.rename(tmp, dir);
          await fsyncDir(path.dirname(dir));
          this.opts.log?.('image cache: filled', { digest, bytes, needBytes, ms: at - started });
        } catch (err) {
          await fs.rm(tmp, { recursive: true, force: true });
          throw err;
        } finally {
          activeScratch.delete(tmp);
        }
        return { dir, fetched: true, evicted };
      } finally {
        await release();
      }
    });
  }

  async gc(opts: ImageCacheUse): Promise<{ deleted: string[]; freedBytes: number }> {
    await this.init();
    await this.sweep();
    const plan = gcPlan({ entries: await this.list(), referenced: opts.referenced, inUse: opts.inUse, retentionMs: this.opts.retentionMs, now: this.now() });
    const deleted: string[] = [];
    let freedBytes = 0;
    for (const victim of plan.delete) {
      const bytes = await this.deleteIfAllowed(victim.digest, opts, victim.reason);
      if (bytes === undefined) continue;
      deleted.push(victim.digest);
      freedBytes += bytes;
    }
    await this.emptyTrash();
    return { deleted, freedBytes };
  }

  // ───────── internals ─────────

  private init(): Promise<void> {
    this.ready ??= (async () => {
      for (const sub of ['sha256', 'meta', 'tmp', 'trash', 'locks']) await fs.mkdir(path.join(this.root, sub), { recursive: true });
      await this.sweep();
    })();
    return this.ready;
  }

  private async lockContent(needBytes: number): Promise<string> {
    this.pidStart ??= startTime(process.pid);
    return `${process.pid}\n${await this.pidStart}\n${needBytes}\n`;
  }

  private async lock(name: string, needBytes: number, opts: { wait: boolean; signal?: AbortSignal }): Promise<Release | undefined> {
    const file = path.join(this.root, 'locks', `${name}.lock`);
    return takeLock(file, await this.lockContent(needBytes), { ...opts, onTakeover: (pid) => this.opts.log?.('image cache: took over the lock of a dead process', { lock: name, pid }) });
  }

  /** A fresh scratch path `<root>/<sub>/<hex>.<pid>.<random>`, marked as this process's. */
  private async scratch(sub: 'tmp' | 'trash', hex: string, suffix = ''): Promise<string> {
    const file = path.join(this.root, sub, `${hex}.${process.pid}.${randomBytes(6).toString('hex')}${suffix}`);
    activeScratch.add(file);
    return file;
  }

  private metaFile(hex: string): string {
    return path.join(this.root, 'meta', `${hex}.json`);
  }

  private async writeMeta(hex: string, meta: Meta): Promise<void> {
    const tmp = await this.scratch('tmp', hex, '.json');
    try {
      await fs.writeFile(tmp, `${JSON.stringify(meta)}\n`);
      await fs.rename(tmp, this.metaFile(hex));
    } catch (err) {
      await fs.rm(tmp, { force: true });
      throw err;
    } finally {
      activeScratch.delete(tmp);
    }
  }

  /** The entry of a present image: its metadata, or (missing or unreadable) its disk usage and mtime. */
  private async entry(hex: string): Promise<CacheEntry | undefined> {
    const dir = path.join(this.root, 'sha256', hex);
    let st;
    try {
      st = await fs.stat(dir);
    } catch {
      return undefined;
    }
    if (!st.isDirectory()) return undefined;
    const digest = `sha256:${hex}`;
    try {
      const meta = JSON.parse(await fs.readFile(this.metaFile(hex), 'utf8')) as Partial<Meta>;
      if (meta.digest === digest && [meta.bytes, meta.createdMs, meta.lastUsedMs].every((n) => typeof n === 'number' && Number.isFinite(n))) {
        return { digest, bytes: meta.bytes!, createdMs: meta.createdMs!, lastUsedMs: meta.lastUsedMs! };
      }
    } catch {
      // no or broken metadata: measured below
    }
    try {
      return { digest, bytes: await diskUsage(dir), createdMs: st.mtimeMs, lastUsedMs: st.mtimeMs };
    } catch {
      return undefined; // deleted meanwhile
    }
  }

  /** Fills in progress elsewhere: live holders of other digests' locks whose image is not present yet, with the bytes they declared. */
  private async pending(exceptHex: string): Promise<CacheEntry[]> {
    const fills: CacheEntry[] = [];
    for (const name of await fs.readdir(path.join(this.root, 'locks'))) {
      const m = /^([0-9a-f]{64})\.lock$/.exec(name);
      if (!m || m[1] === exceptHex) continue;
      const holder = await readHolder(path.join(this.root, 'locks', name));
      if (holder === 'gone' || holder === 'unreadable' || holder.needBytes <= 0) continue;
      if (!(await isAlive(holder.pid, holder.started))) continue;
      const digest = `sha256:${m[1]}`;
      if (await this.has(digest)) continue;
      fills.push({ digest, bytes: holder.needBytes, createdMs: this.now(), lastUsedMs: this.now() });
    }
    return fills;
  }

  /** Admission under the cache-wide lock, evicting what it allows; an ImageCacheFullError when nothing can make room. */
  private async admitAndEvict(digest: string, needBytes: number, opts: ImageCacheUse & { signal?: AbortSignal }): Promise<string[]> {
    const release = (await this.lock(ADMIT_LOCK, 0, { wait: true, signal: opts.signal }))!;
    try {
      const evicted: string[] = [];
      const busy = new Set(opts.inUse);
      for (;;) {
        // A fill in progress counts as used (and never evictable); the disk it will still take, as taken.
        const pending = await this.pending(hexOf(digest));
        const pendingBytes = pending.reduce((sum, e) => sum + e.bytes, 0);
        const decision = admit({
          needBytes,
          entries: [...(await this.list()), ...pending],
          budgetBytes: this.opts.budgetBytes,
          freeDiskBytes: Math.max(0, (await this.freeBytes(this.root)) - pendingBytes),
          reserveBytes: this.opts.reserveBytes ?? 0,
          inUse: new Set([...busy, ...pending.map((e) => e.digest)]),
          referenced: opts.referenced,
          now: this.now(),
          retentionMs: this.opts.retentionMs,
        });
        if (!decision.ok) {
          this.opts.log?.('image cache: refused', { digest, needBytes, pendingBytes, reason: decision.reason });
          throw new ImageCacheFullError(digest, decision.reason);
        }
        let blocked = false;
        for (const victim of decision.evict) {
          const bytes = await this.deleteIfAllowed(victim, { inUse: busy, referenced: opts.referenced }, 'evicted to admit', digest);
          if (bytes === undefined) {
            // Taken meanwhile (a fill, a use or a gc elsewhere): decide again without it.
            busy.add(victim);
            blocked = true;
            break;
          }
          evicted.push(victim);
        }
        if (!blocked) break;
      }
      await this.emptyTrash();
      return evicted;
    } finally {
      await release();
    }
  }

  /**
   * Moves the entry to the trash when, under its lock and with its current metadata, gcPlan
   * still allows it; its bytes, or undefined when it stays (or is gone or locked).
   */
  private async deleteIfAllowed(digest: string, use: { inUse: ReadonlySet<string>; referenced: ReadonlySet<string> }, why: string, forDigest?: string): Promise<number | undefined> {
    const hex = hexOf(digest);
    const release = await this.lock(hex, 0, { wait: false });
    if (!release) return undefined;
    try {
      const entry = await this.entry(hex);
      if (!entry) return undefined;
      const plan = gcPlan({ entries: [entry], inUse: use.inUse, referenced: use.referenced, retentionMs: this.opts.retentionMs, now: this.now() });
      if (plan.delete.length === 0) return undefined;
      const trash = await this.scratch('trash', hex);
      await fs.rename(path.join(this.root, 'sha256', hex), trash);
      await fs.rm(this.metaFile(hex), { force: true });
      activeScratch.delete(trash);
      this.opts.log?.(`image cache: ${why}`, { digest, bytes: entry.bytes, reason: plan.delete[0]!.reason, ...(forDigest ? { for: forDigest } : {}) });
      return entry.bytes;
    } finally {
      await release();
    }
  }

  private async emptyTrash(): Promise<void> {
    const trash = path.join(this.root, 'trash');
    for (const name of await fs.readdir(trash)) {
      if (activeScratch.has(path.join(trash, name))) continue;
      await fs.rm(path.join(trash, name), { recursive: true, force: true }).catch(() => undefined);
    }
  }

  /** Removes tmp dirs and metadata left by processes that are gone (or by an earlier process with this pid), and the trash. */
  private async sweep(): Promise<void> {
    const tmp = path.join(this.root, 'tmp');
    for (const name of await fs.readdir(tmp)) {
      if (activeScratch.has(path.join(tmp, name))) continue;
      const m = SCRATCH.exec(name);
      if (m) {
        const pid = Number(m[2]);
        if (pid !== process.pid && (await isAlive(pid, ''))) continue;
      }
      await fs.rm(path.join(tmp, name), { recursive: true, force: true });
      this.opts.log?.('image cache: removed a leftover tmp', { name });
    }
    await this.emptyTrash();
  }
}
