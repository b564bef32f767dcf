/**
 * Running the real `ekiden` (node bin/ekiden.js, after `npm run build`) as a child process in
 * tests, and making sure nothing it started outlives the test: every child is its own process
 * group, killed with everything under its data dirs by `killAll()` (call it in afterEach).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT } from '../support/harness.js';
import { waitUntil } from '../support/wait.js';

export const BIN = join(ROOT, 'bin', 'ekiden.js');

/** Variables that would point `ekiden` at a cluster or at GitHub: never inherited by the children. */
const OUTSIDE = ['TEMPORAL_ADDRESS', 'TEMPORAL_PROFILE', 'TEMPORAL_CONFIG_FILE', 'TEMPORAL_NAMESPACE', 'TEMPORAL_API_KEY', 'GITHUB_TOKEN', 'EKIDEN_GITHUB_SCOPE', 'GITHUB_API_URL'];

/** This process's environment without OUTSIDE, plus `extra`: what a child `ekiden` sees. */
export function cleanEnv(extra: Record<string, string> = {}): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !OUTSIDE.includes(k)) env[k] = v;
  return { ...env, ...extra };
}

/** Live processes whose argv, environment or cwd mention `dir` (fake guests, the dev server's db file…). */
export function processesUnder(dir: string): string[] {
  const found: string[] = [];
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    if (Number(pid) === process.pid) continue;
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      if (stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z')) continue; // zombie: already dead
      const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ');
      const env = readFileSync(`/proc/${pid}/environ`, 'utf8');
      let cwd = '';
      try {
        cwd = readlinkSync(`/proc/${pid}/cwd`);
      } catch {
        // no cwd to read
      }
      if (cmd.includes(dir) || env.includes(dir) || cwd.startsWith(dir)) found.push(`${pid} ${cmd}`);
    } catch {
      // gone meanwhile, or not ours to read
    }
  }
  return found;
}

/** Temporal dev servers (the CLI, not its supervisor) whose database is under `dir`. */
export function devServersUnder(dir: string): string[] {
  return processesUnder(dir).filter((p) => / server start-dev /.test(p) && !/ -e /.test(p));
}

export interface EkidenChild {
  proc: ChildProcess;
  pid: number;
  /** Everything written so far. */
  out(): string;
  err(): string;
  /** Resolves with how it ended and how long it took since `since` (default: its start). */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>;
  startedAt: number;
}

const children = new Set<EkidenChild>();
const dirs = new Set<string>();

/** A fresh temporary directory, removed (with whatever runs under it killed) by killAll(). */
export function tempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  dirs.add(dir);
  return dir;
}

/** Starts `ekiden ARGS…` in its own process group. */
export function startEkiden(args: string[], opts: { env?: Record<string, string>; cwd?: string; uid?: number; gid?: number } = {}): EkidenChild {
  const proc = spawn(process.execPath, [BIN, ...args], {
    cwd: opts.cwd ?? ROOT,
    env: cleanEnv(opts.env),
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
    uid: opts.uid,
    gid: opts.gid,
  });
  let out = '';
  let err = '';
  proc.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
  proc.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>((resolve) => {
    proc.once('close', (code, signal) => resolve({ code, signal, at: Date.now() }));
  });
  const child: EkidenChild = { proc, pid: proc.pid!, out: () => out, err: () => err, exited, startedAt: Date.now() };
  children.add(child);
  void exited.then(() => children.delete(child));
  return child;
}

export interface Finished {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** Seconds from the start (or from `since`) to the exit. */
  seconds: number;
  timedOut: boolean;
}

/** Waits for the child to exit, at most `timeoutMs` (then kills its group and says so). */
export async function finished(child: EkidenChild, timeoutMs: number, since = child.startedAt): Promise<Finished> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<'timeout'>((r) => (timer = setTimeout(() => r('timeout'), timeoutMs)));
  const r = await Promise.race([child.exited, timeout]);
  clearTimeout(timer);
  if (r === 'timeout') {
    killGroup(child.pid);
    const e = await child.exited;
    return { code: e.code, signal: e.signal, stdout: child.out(), stderr: child.err(), seconds: (Date.now() - since) / 1000, timedOut: true };
  }
  return { code: r.code, signal: r.signal, stdout: child.out(), stderr: child.err(), seconds: (r.at - since) / 1000, timedOut: false };
}

/** `ekiden ARGS…` to its end (at most `timeoutMs`). */
export async function runEkiden(args: string[], timeoutMs: number, opts: Parameters<typeof startEkiden>[1] = {}): Promise<Finished> {
  return finished(startEkiden(args, opts), timeoutMs);
}

/** Waits until the child's stdout matches `pattern` (fails early if it exits first). */
export async function outputMatches(child: EkidenChild, pattern: RegExp, timeoutMs: number): Promise<void> {
  let ended = false;
  void child.exited.then(() => (ended = true));
  await waitUntil(
    () => ({ matched: pattern.test(child.out()), ended }),
    (v) => v.matched || v.ended,
    timeoutMs,
    `ekiden output to match ${pattern}`,
    100,
  );
  if (!pattern.test(child.out())) throw new Error(`ekiden exited before printing ${pattern}:\n${child.out()}\n${child.err()}`);
}

function killGroup(pid: number): void {
  try {
    process.kill(-pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

function killPid(line: string): void {
  try {
    process.kill(Number(line.split(' ')[0]), 'SIGKILL');
  } catch {
    // already gone
  }
}

/** Kills every child still running (its whole group) and every process under a temp dir, then removes the dirs. */
export async function killAll(): Promise<void> {
  for (const child of children) killGroup(child.pid);
  await Promise.all([...children].map((c) => c.exited));
  for (const dir of dirs) {
    for (let round = 0; round < 3; round++) {
      const left = processesUnder(dir);
      if (left.length === 0) break;
      left.forEach(killPid);
      await new Promise((r) => setTimeout(r, 200));
    }
    rmSync(dir, { recursive: true, force: true });
  }
  dirs.clear();
}

/** The lines of `text` that are not empty. */
export function lines(text: string): string[] {
  return text.split('\n').filter((l) => l.trim() !== '');
}
