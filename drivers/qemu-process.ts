/**
 * The QEMU processes of the QEMU driver: running qemu-img, launching qemu-system daemonized
 * (-daemonize: own session, outlives the worker), reading its pid file, recognising a live
 * QEMU as a given VM's (a recorded pid may have been reused) and stopping it — over QMP when
 * the socket answers, with signals otherwise. Knows nothing of the VM record (qemu-record.ts).
 */
import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { qmpCommand } from './qemu-qmp.js';
import { isLivePid, minimalEnv, pause, waitUntil } from './procs.js';
import { DriverError } from './types.js';
import { errCode } from './vm-dirs.js';

/** Runs a short tool (qemu-img) to completion; its stdout, or a DriverError with its stderr's tail. */
export function runTool(file: string, args: string[], signal?: AbortSignal): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(file, args, { signal, maxBuffer: 4 << 20 }, (err, stdout, stderr) => {
      if (err) {
        const detail = (stderr || err.message).trim().split('\n').slice(-3).join(' | ');
        reject(new DriverError(errCode(err) === 'ENOENT' ? 'not-found' : 'failed', `${path.basename(file)}: ${detail}`, { cause: err }));
      } else resolve(stdout);
    });
  });
}

/**
 * Runs QEMU with -daemonize (argv must carry it) in `cwd`, stderr to `errFile`: its first
 * process exits once the VM is set up (0) or failed. Not ok: the error, from stderr's tail.
 */
export async function launchDaemonized(args: { qemuBinary: string; argv: string[]; cwd: string; errFile: string }): Promise<{ ok: boolean; error: string }> {
  const fh = await fs.open(args.errFile, 'w', 0o644);
  try {
    const child = spawn(args.qemuBinary, args.argv, { detached: true, stdio: ['ignore', 'ignore', fh.fd], env: minimalEnv(), cwd: args.cwd });
    const outcome = await new Promise<{ code: number | null; error?: string }>((resolve) => {
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        resolve({ code: null, error: 'QEMU did not finish setting up the VM within 60 s' });
      }, 60_000);
      child.once('error', (err) => {
        clearTimeout(timer);
        resolve({ code: null, error: errCode(err) === 'ENOENT' ? `${args.qemuBinary} not found` : err.message });
      });
      child.once('exit', (code) => {
        clearTimeout(timer);
        resolve({ code });
      });
    });
    if (outcome.code === 0) return { ok: true, error: '' };
    const stderr = (await fs.readFile(args.errFile, 'utf8').catch(() => '')).trim();
    return { ok: false, error: outcome.error ?? (stderr.split('\n').slice(-5).join(' | ') || `exit ${outcome.code}`) };
  } finally {
    await fh.close();
  }
}

/** The pid QEMU wrote to its -pidfile, or undefined (no file, or not a pid). */
export async function readPidFile(file: string): Promise<number | undefined> {
  const pid = Number((await fs.readFile(file, 'utf8').catch(() => '')).trim());
  return Number.isInteger(pid) && pid > 0 ? pid : undefined;
}

/** The argv of a live (non-zombie) process, or undefined. */
async function processArgv(pid: number): Promise<string[] | undefined> {
  try {
    const raw = await fs.readFile(`/proc/${pid}/cmdline`);
    if (raw.length === 0) return undefined; // zombie or kernel thread
    return raw.toString('utf8').replace(/\0$/, '').split('\0');
  } catch {
    return undefined;
  }
}

function argAfter(argv: string[], flag: string): string | undefined {
  const i = argv.indexOf(flag);
  return i >= 0 ? argv[i + 1] : undefined;
}

/** True when `pid` is a live process whose argv carries `-name name -uuid uuid` (qemuArgs). */
export async function isQemuOf(pid: number, vm: { name: string; uuid: string }): Promise<boolean> {
  const argv = await processArgv(pid);
  if (!argv) return false;
  if (argAfter(argv, '-name') !== vm.name || argAfter(argv, '-uuid') !== vm.uuid) return false;
  // A zombie has an empty cmdline, but check the state too for processes being reaped.
  return isLivePid(pid);
}

/** Sends `sig` to `pid`; a process that is gone already is no error. */
export function killQuietly(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // gone already
  }
}

/**
 * Ends the running QEMU `pid` of VM `name`; `alive` tells whether it still runs.
 * Graceful: ACPI power button (QMP system_powerdown, repeated every 5 s in case the guest
 * was not listening yet; SIGTERM when QMP does not answer), SIGKILL after graceMs. Hard
 * (delete): QMP quit, SIGKILL after 5 s. DriverError 'failed' when it survives SIGKILL.
 */
export async function stopQemu(opts: {
  name: string;
  pid: number;
  qmpSocket?: string;
  graceMs: number;
  hard?: boolean;
  signal?: AbortSignal;
  alive: () => Promise<boolean>;
}): Promise<void> {
  const { name, pid, alive } = opts;
  const started = Date.now();
  const graceMs = opts.hard ? 5_000 : Math.max(0, opts.graceMs);
  const ask = async (): Promise<boolean> => {
    if (!opts.qmpSocket) return false;
    try {
      await qmpCommand(opts.qmpSocket, opts.hard ? 'quit' : 'system_powerdown', undefined, 3_000);
      return true;
    } catch {
      return false;
    }
  };
  if (graceMs > 0) {
    let asked = await ask();
    // No QMP (socket gone): QEMU still ends cleanly on SIGTERM, though the guest does not shut down.
    if (!asked) killQuietly(pid, 'SIGTERM');
    let lastAsk = Date.now();
    while ((await alive()) && Date.now() - started < graceMs) {
      await pause(100, opts.signal);
      if (asked && !opts.hard && Date.now() - lastAsk >= 5_000) {
        asked = await ask();
        lastAsk = Date.now();
      }
    }
  }
  if (await alive()) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch (err) {
      if (errCode(err) !== 'ESRCH') throw new DriverError('failed', `VM ${name}: cannot kill QEMU (pid ${pid})`, { cause: err });
    }
    if (!(await waitUntil(async () => !(await alive()), { timeoutMs: 10_000, intervalMs: 50 }))) {
      throw new DriverError('failed', `VM ${name}: QEMU (pid ${pid}) survived SIGKILL`);
    }
  }
}
