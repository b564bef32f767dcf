/**
 * One owner per data directory. `ekiden up` (its dev server's SQLite file, host state, runner
 * logs) and `ekiden worker` (a host's state) take `DIR/ekiden.lock` before they start anything:
 * a file created with O_EXCL (`wx`) holding the owner's pid and, on Linux, that process's start
 * time (so a pid reused after a reboot does not pass for the owner). A lock whose process is
 * gone is taken over; the lock is removed when its owner releases it or exits.
 *
 * Also making the data directory itself, with one clear line when that is impossible (a file
 * in the way, a read-only file system, no permission) rather than the raw errno — Node's
 * recursive mkdir reports ENOENT for a read-only file system.
 */
import { closeSync, mkdirSync, openSync, readFileSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { errorMessage } from '../core/failures.js';

export const LOCK_FILE = 'ekiden.lock';

/** The data directory cannot be made or written (not a directory, read-only, no permission). */
export class DataDirError extends Error {
  override readonly name = 'DataDirError';
}

/** Another live process holds the data directory's lock. */
export class DataDirInUseError extends Error {
  override readonly name = 'DataDirInUseError';
  constructor(
    readonly dir: string,
    readonly pid: number,
  ) {
    super(`data dir ${dir} is in use by pid ${pid}`);
  }
}

export interface DataDirLock {
  readonly dir: string;
  readonly file: string;
  /** Removes the lock if it is still this process's (idempotent). */
  release(): void;
}

function codeOf(err: unknown): string | undefined {
  const code = (err as { code?: unknown }).code;
  return typeof code === 'string' ? code : undefined;
}

/** One line for a failed create/write under the data dir: the problem and the fix. */
function explain(dir: string, path: string, err: unknown): DataDirError {
  const what = path === dir ? 'cannot create it' : `cannot create ${path}`;
  switch (codeOf(err)) {
    case 'EROFS':
      return new DataDirError(`data dir ${dir}: ${what}: the file system is read-only; give a directory on a writable file system with --data-dir`);
    case 'EACCES':
    case 'EPERM': {
      const who = typeof process.getuid === 'function' ? ` (uid ${process.getuid()})` : '';
      return new DataDirError(`data dir ${dir}: ${what}: permission denied${who}; give a directory this user can write, or fix its permissions`);
    }
    case 'ENOSPC':
    case 'EDQUOT':
      return new DataDirError(`data dir ${dir}: ${what}: no space left on the device; free some space or give another directory`);
    case 'ENOTDIR':
      return notADirectory(dir, path);
    default:
      return new DataDirError(`data dir ${dir}: ${what}: ${errorMessage(err)}`);
  }
}

/** The deepest existing component of `path` that is not a directory (what is in the way). */
function fileInTheWay(path: string): string | undefined {
  for (let p = path; ; p = dirname(p)) {
    try {
      if (!statSync(p).isDirectory()) return p;
      return undefined;
    } catch {
      // missing, or a component above is a file: look further up
    }
    if (dirname(p) === p) return undefined;
  }
}

function notADirectory(dir: string, path: string): DataDirError {
  const blocker = fileInTheWay(path) ?? path;
  if (blocker === dir) return new DataDirError(`data dir ${dir} is a file, not a directory; give a directory (or move the file away)`);
  return new DataDirError(`data dir ${dir}: ${blocker} is a file, not a directory; give another directory (or move the file away)`);
}

/** mkdir -p, one component at a time so each failure has its real cause. */
function makeDir(dir: string, path: string): void {
  try {
    mkdirSync(path);
    return;
  } catch (err) {
    const code = codeOf(err);
    if (code === 'EEXIST') {
      let isDir = false;
      try {
        isDir = statSync(path).isDirectory();
      } catch (statErr) {
        throw new DataDirError(`data dir ${dir}: ${path} exists but cannot be read (${errorMessage(statErr)}); remove it or give another directory`);
      }
      if (!isDir) throw notADirectory(dir, path);
      return;
    }
    if (code === 'ENOENT' && dirname(path) !== path) {
      makeDir(dir, dirname(path));
      makeDir(dir, path);
      return;
    }
    throw explain(dir, path, err);
  }
}

/**
 * Makes `dir` (and its parents) when missing and returns its absolute path; a DataDirError
 * naming the problem when that is impossible.
 */
export function ensureDataDir(dir: string): string {
  const abs = resolve(dir);
  makeDir(abs, abs);
  return abs;
}

/** Makes `sub` under the data dir `dir`, explaining a failure the same way. */
export function ensureDataSubdir(dir: string, sub: string): string {
  const path = join(dir, sub);
  makeDir(dir, path);
  return path;
}

/** The process's start time in clock ticks since boot (Linux), '' elsewhere or when unknown. */
function startTime(pid: number): string {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command (which may hold spaces and parentheses): state is field 3, starttime field 22.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return fields[19] ?? '';
  } catch {
    return '';
  }
}

/** Whether `pid` is a live process (a zombie is not), and when it started is `started` if known. */
function isAlive(pid: number, started: string): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    if (codeOf(err) !== 'EPERM') return false; // ESRCH: no such process
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (fields[0] === 'Z' || fields[0] === 'X') return false;
    if (started && fields[19] && fields[19] !== started) return false; // the pid was reused
  } catch {
    // no /proc (macOS): the signal probe is all there is
  }
  return true;
}

interface Holder {
  pid: number;
  started: string;
  raw: string;
}

/** The lock's holder; 'gone' when the file vanished, 'unreadable' when it holds no pid (yet). */
function readHolder(file: string): Holder | 'gone' | 'unreadable' {
  let raw: string;
  try {
    raw = readFileSync(file, 'utf8');
  } catch (err) {
    if (codeOf(err) === 'ENOENT') return 'gone';
    throw err;
  }
  const [pidLine = '', started = ''] = raw.split('\n');
  const pid = /^[1-9][0-9]{0,9}$/.test(pidLine) ? Number(pidLine) : NaN;
  return Number.isSafeInteger(pid) ? { pid, started: started.trim(), raw } : 'unreadable';
}

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

function ageMs(file: string): number {
  try {
    return Date.now() - statSync(file).mtimeMs;
  } catch {
    return 0;
  }
}

/** Creates `file` exclusively with `content`; false when it already exists. */
function createExclusive(file: string, content: string): boolean {
  let fd: number;
  try {
    fd = openSync(file, 'wx', 0o644);
  } catch (err) {
    if (codeOf(err) === 'EEXIST') return false;
    throw err;
  }
  try {
    writeSync(fd, content);
  } finally {
    closeSync(fd);
  }
  return true;
}

/**
 * Removes the stale lock whose content was `stale`, under a second exclusive file so two
 * processes taking over the same stale lock cannot remove each other's fresh one.
 */
function removeStale(file: string, stale: string, mine: string): void {
  const guard = `${file}.takeover`;
  if (!createExclusive(guard, mine)) {
    // Someone else is taking over; a guard left by a process that died in those microseconds is cleared.
    const holder = readHolder(guard);
    if (holder === 'gone') return;
    if ((holder === 'unreadable' && ageMs(guard) > 2_000) || (holder !== 'unreadable' && !isAlive(holder.pid, holder.started))) {
      try {
        unlinkSync(guard);
      } catch {
        // already gone
      }
    }
    sleepSync(20);
    return;
  }
  try {
    let current: string | undefined;
    try {
      current = readFileSync(file, 'utf8');
    } catch {
      current = undefined;
    }
    if (current === stale) unlinkSync(file);
  } finally {
    try {
      unlinkSync(guard);
    } catch {
      // nothing to remove
    }
  }
}

/**
 * Takes the data dir's lock (the directory must exist: see ensureDataDir). A
 * DataDirInUseError when a live process holds it, a DataDirError when the directory
 * cannot be written.
 */
export function lockDataDir(dir: string, opts: { command?: string } = {}): DataDirLock {
  const abs = resolve(dir);
  const file = join(abs, LOCK_FILE);
  const content = `${process.pid}\n${startTime(process.pid)}\n${opts.command ?? process.argv.slice(1).join(' ')}\n`;
  for (let attempt = 0; attempt < 200; attempt++) {
    let created: boolean;
    try {
      created = createExclusive(file, content);
    } catch (err) {
      throw explain(abs, file, err);
    }
    if (created) return holdLock(abs, file, content);
    const holder = readHolder(file);
    if (holder === 'gone') continue;
    if (holder === 'unreadable') {
      // Just created by another process that has not written its pid yet; or garbage left long ago.
      if (ageMs(file) < 2_000) {
        sleepSync(20);
        continue;
      }
      let raw = '';
      try {
        raw = readFileSync(file, 'utf8');
      } catch {
        continue;
      }
      removeStale(file, raw, content);
      continue;
    }
    if (isAlive(holder.pid, holder.started)) throw new DataDirInUseError(abs, holder.pid);
    removeStale(file, holder.raw, content);
  }
  throw new DataDirError(`data dir ${abs}: could not take ${file}: other processes keep taking it over; try again`);
}

/** The pid of the live process holding `dir`'s lock, or undefined when none does. */
export function lockHolder(dir: string): number | undefined {
  let holder: ReturnType<typeof readHolder>;
  try {
    holder = readHolder(join(resolve(dir), LOCK_FILE));
  } catch {
    return undefined; // unreadable (a file in the way, no permission): nobody we can see
  }
  if (holder === 'gone' || holder === 'unreadable') return undefined;
  return isAlive(holder.pid, holder.started) ? holder.pid : undefined;
}

function holdLock(dir: string, file: string, content: string): DataDirLock {
  let held = true;
  const release = () => {
    if (!held) return;
    held = false;
    process.off('exit', release);
    try {
      if (readFileSync(file, 'utf8') === content) unlinkSync(file);
    } catch {
      // already gone (or the directory with it)
    }
  };
  // A process that ends without releasing (process.exit, an uncaught error) still removes it.
  process.on('exit', release);
  return { dir, file, release };
}

/** Ensures `dir` exists and takes its lock: what `ekiden up` and `ekiden worker` do first. */
export function claimDataDir(dir: string, opts: { command?: string } = {}): DataDirLock {
  return lockDataDir(ensureDataDir(dir), opts);
}
