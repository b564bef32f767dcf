/**
 * `packer build` for Ekiden: one run of one template in a build directory the caller owns.
 *
 * Contract:
 * - `buildDir` must not exist or be empty; everything Packer writes goes inside it: the
 *   variables file (`vars.json`, mode 0600: variables never go on argv), HOME, TMPDIR,
 *   PACKER_CACHE_DIR, PACKER_CONFIG_DIR, and the output directory (`output_dir`, default
 *   `<buildDir>/output`, passed to the template as the variable `output_dir`, which the template
 *   must declare). CHECKPOINT_DISABLE=1; PACKER_LOG is never set.
 * - `packer validate` runs first: a template Packer rejects fails at once as kind 'template'
 *   (not retryable).
 * - `packer build -machine-readable -color=false -on-error=cleanup` runs in its own process
 *   group; every ui line goes to `onLine`, every step (`==> builder: …`) to `onStep`.
 * - Cancellation (`signal`) and `timeoutMs`: SIGINT to Packer's process group, SIGKILL after a
 *   grace period, then every process still naming the build directory on its command line
 *   (the QEMU Packer started) is killed, the output directory removed, and the promise rejects
 *   with kind 'cancelled' / 'timeout'. A failed build also removes the output directory, so
 *   nothing half-built that looks like an image is left; `buildDir` itself stays.
 * - Errors are PackerErrors: a short message, the last output lines in `lastLines`, `cause`.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { MachineReadableState, parseMachineLine, type PackerArtifact, type PackerStep } from './machine-readable.js';

export type { PackerStep, PackerArtifact } from './machine-readable.js';

export type PackerVariable = string | number | boolean | string[];

export interface PackerBuildOptions {
  /** A template file or a directory of `*.pkr.hcl` files. */
  template: string;
  /** Per run and attempt; must not exist or be empty. Everything goes inside. */
  buildDir: string;
  /** Template variables (written to `<buildDir>/vars.json`); `output_dir` is filled in when absent. */
  variables: Record<string, PackerVariable>;
  /** Default `packer` on PATH. */
  packerPath?: string;
  /** Extra environment for Packer (e.g. PACKER_PLUGIN_PATH); the build-dir settings win. */
  env?: Record<string, string>;
  signal?: AbortSignal;
  /** Every output line (ui say/message/error, stderr), for the worker log. */
  onLine?: (line: string) => void;
  /** Step changes, for heartbeats. */
  onStep?: (s: PackerStep) => void;
  /** Deadline of validate plus build. */
  timeoutMs?: number;
  /** SIGINT → SIGKILL grace on cancel or timeout. Default 30000. */
  killGraceMs?: number;
}

export interface PackerBuildResult {
  artifacts: PackerArtifact[];
  steps: PackerStep[];
  durationMs: number;
  /** The output directory (the variable `output_dir`). */
  outputDir: string;
}

export type PackerErrorKind = 'template' | 'build' | 'cancelled' | 'timeout' | 'not-installed';

export class PackerError extends Error {
  override readonly name = 'PackerError';
  readonly kind: PackerErrorKind;
  readonly retryable: boolean;
  /** The last lines Packer printed (at most LAST_LINES). */
  readonly lastLines: string[];
  /** The step the build was at, when it got that far. */
  readonly step?: string;
  constructor(kind: PackerErrorKind, message: string, options: { retryable?: boolean; lastLines?: string[]; step?: string; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.kind = kind;
    this.retryable = options.retryable ?? (kind === 'timeout' || kind === 'build');
    this.lastLines = options.lastLines ?? [];
    if (options.step !== undefined) this.step = options.step;
  }
}

const LAST_LINES = 20;
const DEFAULT_KILL_GRACE_MS = 30_000;
/** A provisioner that failed on its own (a script's exit status) fails again when retried. */
const DETERMINISTIC_FAILURES = [/Script exited with non-zero exit status/i, /Erroneous exit code/i, /Bad script/i, /Failed to parse template/i];

/**
 * sha256 (`sha256:<hex>`) over the template: a file's content, or every file under a
 * directory (sorted by relative path, each framed by its path and length), so any edit of a
 * template or of a helper file next to it changes the hash.
 */
export async function templateHash(template: string): Promise<string> {
  const hash = createHash('sha256');
  const st = await fs.stat(template);
  const files: Array<{ rel: string; abs: string }> = [];
  if (st.isDirectory()) {
    const walk = async (dir: string, rel: string): Promise<void> => {
      for (const e of await fs.readdir(dir, { withFileTypes: true })) {
        const r = rel ? `${rel}/${e.name}` : e.name;
        if (e.isDirectory()) await walk(path.join(dir, e.name), r);
        else if (e.isFile()) files.push({ rel: r, abs: path.join(dir, e.name) });
      }
    };
    await walk(template, '');
    files.sort((a, b) => (a.rel < b.rel ? -1 : a.rel > b.rel ? 1 : 0));
  } else {
    files.push({ rel: path.basename(template), abs: template });
  }
  for (const f of files) {
    const content = await fs.readFile(f.abs);
    hash.update(`${f.rel}\0${content.length}\0`);
    hash.update(content);
  }
  return `sha256:${hash.digest('hex')}`;
}

/** Live processes (other than this one) whose command line mentions `needle`. */
export function processesMentioning(needle: string): number[] {
  const out: number[] = [];
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return out;
  }
  for (const entry of entries) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
      if (state === 'Z' || state === 'X') continue;
      if (readFileSync(`/proc/${entry}/cmdline`, 'utf8').includes(needle)) out.push(Number(entry));
    } catch {
      // ended meanwhile
    }
  }
  return out;
}

function pause(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function killGroup(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(-pid, sig);
  } catch {
    // group gone
  }
}

/** SIGKILLs the process group and every process naming `dir`, and waits (bounded) until they are gone. */
async function reap(pid: number | undefined, dir: string): Promise<void> {
  if (pid !== undefined) killGroup(pid, 'SIGKILL');
  const deadline = Date.now() + 10_000;
  for (;;) {
    const left = processesMentioning(dir);
    if (left.length === 0 || Date.now() > deadline) return;
    for (const p of left) {
      try {
        process.kill(p, 'SIGKILL');
      } catch {
        // gone
      }
    }
    await pause(50);
  }
}

function isInside(child: string, parent: string): boolean {
  const rel = path.relative(parent, child);
  return rel !== '' && !rel.startsWith('..') && !path.isAbsolute(rel);
}

/**
 * Packer's TMPDIR: inside the build dir, unless that path is too long for the Unix sockets
 * Packer's plugins listen on there (108 bytes with the socket's own name: Packer then crashes
 * with a nil builder); then a short directory under the system's temp dir named after the
 * build dir's hash, removed with the build.
 */
export function packerTmpDir(buildDir: string): string {
  const inside = path.join(buildDir, 'tmp');
  if (Buffer.byteLength(inside) <= 64) return inside;
  return path.join(os.tmpdir(), `ekiden-packer-${createHash('sha256').update(buildDir).digest('hex').slice(0, 12)}`);
}

function packerEnv(buildDir: string, extra: Record<string, string> | undefined): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, ...extra };
  delete env.PACKER_LOG;
  delete env.PACKER_LOG_PATH;
  return {
    ...env,
    HOME: path.join(buildDir, 'home'),
    TMPDIR: packerTmpDir(buildDir),
    PACKER_CACHE_DIR: path.join(buildDir, 'packer-cache'),
    PACKER_CONFIG_DIR: path.join(buildDir, 'packer-config'),
    PACKER_CONFIG: path.join(buildDir, 'packer-config', 'packerconfig'),
    CHECKPOINT_DISABLE: '1',
  };
}

/** Creates the build directory tree and the variables file; returns the output dir and vars file. */
async function prepare(opts: PackerBuildOptions): Promise<{ outputDir: string; varFile: string }> {
  const buildDir = path.resolve(opts.buildDir);
  const existing = await fs.readdir(buildDir).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return [] as string[];
    throw err;
  });
  if (existing.length > 0) throw new PackerError('build', `build dir ${buildDir} is not empty`, { retryable: false });
  const given = opts.variables.output_dir;
  if (given !== undefined && (typeof given !== 'string' || !isInside(path.resolve(given), buildDir))) {
    throw new PackerError('template', `variable output_dir must be a directory inside the build dir ${buildDir}`, { retryable: false });
  }
  const outputDir = typeof given === 'string' ? path.resolve(given) : path.join(buildDir, 'output');
  await fs.mkdir(buildDir, { recursive: true, mode: 0o700 });
  for (const d of ['home', 'tmp', 'packer-cache', 'packer-config']) await fs.mkdir(path.join(buildDir, d), { mode: 0o700 });
  await fs.mkdir(packerTmpDir(buildDir), { recursive: true, mode: 0o700 });
  const varFile = path.join(buildDir, 'vars.json');
  await fs.writeFile(varFile, `${JSON.stringify({ ...opts.variables, output_dir: outputDir }, null, 2)}\n`, { mode: 0o600, flag: 'wx' });
  return { outputDir, varFile };
}

interface RunOutcome {
  code: number | null;
  signal: NodeJS.Signals | null;
  stopped?: 'cancelled' | 'timeout';
  spawnError?: NodeJS.ErrnoException;
  /** Packer's pid, also its process group id. */
  pid?: number;
}

/**
 * Runs one Packer command in its own process group, feeding each stdout/stderr line to
 * `onStdout`/`onStderr`; stops it on abort or at `deadline`.
 */
async function runPacker(args: {
  packer: string;
  argv: string[];
  cwd: string;
  env: NodeJS.ProcessEnv;
  signal?: AbortSignal;
  deadline?: number;
  killGraceMs: number;
  onStdout: (line: string) => void;
  onStderr: (line: string) => void;
  /** Called once when cancellation or the deadline starts stopping Packer. */
  onStopping?: () => void;
}): Promise<RunOutcome> {
  if (args.signal?.aborted) return { code: null, signal: null, stopped: 'cancelled' };
  if (args.deadline !== undefined && Date.now() >= args.deadline) return { code: null, signal: null, stopped: 'timeout' };
  let child: ChildProcess;
  try {
    child = spawn(args.packer, args.argv, { cwd: args.cwd, env: args.env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  } catch (err) {
    return { code: null, signal: null, spawnError: err as NodeJS.ErrnoException };
  }
  const outDone = new Promise<void>((resolve) => createInterface({ input: child.stdout! }).on('line', args.onStdout).on('close', resolve));
  const errDone = new Promise<void>((resolve) => createInterface({ input: child.stderr! }).on('line', args.onStderr).on('close', resolve));
  let stopped: RunOutcome['stopped'];
  let killTimer: NodeJS.Timeout | undefined;
  const stop = (why: 'cancelled' | 'timeout') => {
    if (stopped || child.pid === undefined) return;
    stopped = why;
    args.onStopping?.();
    killGroup(child.pid, 'SIGINT');
    killTimer = setTimeout(() => killGroup(child.pid!, 'SIGKILL'), args.killGraceMs);
  };
  const onAbort = () => stop('cancelled');
  args.signal?.addEventListener('abort', onAbort, { once: true });
  const deadlineTimer = args.deadline === undefined ? undefined : setTimeout(() => stop('timeout'), Math.max(0, args.deadline - Date.now()));
  try {
    const exit = await new Promise<RunOutcome>((resolve) => {
      child.once('error', (err) => resolve({ code: null, signal: null, spawnError: err as NodeJS.ErrnoException }));
      child.once('exit', (code, signal) => resolve({ code, signal }));
    });
    // Output still buffered in the pipes; a stray holder of the pipe must not hang us.
    await Promise.race([Promise.all([outDone, errDone]), pause(5_000)]);
    return { ...exit, ...(stopped ? { stopped } : {}), ...(child.pid !== undefined ? { pid: child.pid } : {}) };
  } finally {
    args.signal?.removeEventListener('abort', onAbort);
    if (deadlineTimer) clearTimeout(deadlineTimer);
    if (killTimer) clearTimeout(killTimer);
  }
}

/** Runs `packer validate` then `packer build` for `opts.template`; see the module comment. */
export async function runPackerBuild(opts: PackerBuildOptions): Promise<PackerBuildResult> {
  const tmp = packerTmpDir(path.resolve(opts.buildDir));
  try {
    return await runPackerBuildIn(opts);
  } finally {
    if (!isInside(tmp, path.resolve(opts.buildDir))) await fs.rm(tmp, { recursive: true, force: true });
  }
}

async function runPackerBuildIn(opts: PackerBuildOptions): Promise<PackerBuildResult> {
  const started = Date.now();
  const buildDir = path.resolve(opts.buildDir);
  const template = path.resolve(opts.template);
  const packer = opts.packerPath ?? 'packer';
  const deadline = opts.timeoutMs === undefined ? undefined : started + opts.timeoutMs;
  const killGraceMs = opts.killGraceMs ?? DEFAULT_KILL_GRACE_MS;
  if (opts.signal?.aborted) throw new PackerError('cancelled', 'packer build cancelled before it started', { retryable: false, cause: opts.signal.reason });
  const { outputDir, varFile } = await prepare(opts);
  const env = packerEnv(buildDir, opts.env);
  const lastLines: string[] = [];
  const remember = (line: string) => {
    lastLines.push(line);
    if (lastLines.length > LAST_LINES) lastLines.shift();
    opts.onLine?.(line);
  };
  const common = { packer, cwd: buildDir, env, signal: opts.signal, deadline, killGraceMs };
  const failStopped = async (pid: number | undefined, why: 'cancelled' | 'timeout', step?: string): Promise<never> => {
    await reap(pid, buildDir);
    await fs.rm(outputDir, { recursive: true, force: true });
    const message = why === 'cancelled' ? 'packer build cancelled' : `packer build timed out after ${opts.timeoutMs} ms`;
    throw new PackerError(why, step ? `${message} (at step "${step}")` : message, {
      retryable: why === 'timeout',
      lastLines: [...lastLines],
      ...(step ? { step } : {}),
      cause: why === 'cancelled' ? opts.signal?.reason : undefined,
    });
  };
  const notInstalled = (err: NodeJS.ErrnoException): PackerError =>
    new PackerError('not-installed', err.code === 'ENOENT' ? `${packer} not found (apt-get install packer)` : `cannot run ${packer}: ${err.message}`, {
      retryable: false,
      cause: err,
    });

  // validate
  const validated = await runPacker({ ...common, argv: ['validate', `-var-file=${varFile}`, template], onStdout: remember, onStderr: remember });
  if (validated.spawnError) throw notInstalled(validated.spawnError);
  if (validated.stopped) return failStopped(validated.pid, validated.stopped);
  if (validated.code !== 0) {
    await fs.rm(outputDir, { recursive: true, force: true });
    throw new PackerError('template', `packer validate rejected ${template} (exit ${validated.code ?? validated.signal})`, { retryable: false, lastLines: [...lastLines] });
  }

  // build
  const state = new MachineReadableState();
  let current: PackerStep | undefined;
  let stepAtStop: PackerStep | undefined;
  const errors: string[] = [];
  const onStdout = (line: string) => {
    const rec = parseMachineLine(line);
    if (!rec) {
      if (line.trim()) remember(line);
      return;
    }
    const { lines, step } = state.add(rec);
    for (const l of lines) {
      remember(l.text);
      if (l.level === 'error') errors.push(l.text);
    }
    if (step) {
      current = step;
      opts.onStep?.(step);
    }
  };
  const built = await runPacker({
    ...common,
    argv: ['build', '-machine-readable', '-color=false', '-on-error=cleanup', `-var-file=${varFile}`, template],
    onStdout,
    onStderr: (line) => {
      if (line.trim()) remember(line);
    },
    onStopping: () => (stepAtStop = current),
  });
  if (built.spawnError) throw notInstalled(built.spawnError);
  if (built.stopped) return failStopped(built.pid, built.stopped, stepAtStop?.step);
  // Whatever the outcome, nothing Packer started may outlive it.
  await reap(built.code === 0 ? undefined : built.pid, buildDir);
  const artifacts = state.artifactList();
  if (built.code !== 0 || errors.some((e) => /errored|didn't complete successfully/i.test(e))) {
    await fs.rm(outputDir, { recursive: true, force: true });
    const deterministic = errors.some((e) => DETERMINISTIC_FAILURES.some((re) => re.test(e)));
    throw new PackerError('build', `packer build failed (exit ${built.code ?? built.signal})${current ? ` at step "${current.step}"` : ''}`, {
      retryable: !deterministic,
      lastLines: [...lastLines],
      ...(current ? { step: current.step } : {}),
    });
  }
  return { artifacts, steps: state.steps, durationMs: Date.now() - started, outputDir };
}
