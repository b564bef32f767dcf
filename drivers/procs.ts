/**
 * Small process helpers shared by the drivers (fake, QEMU), the fake guest and the tart test
 * double: whether a pid is a live process, abortable pauses, polling until a condition holds
 * (a process has exited), and the minimal environment of the processes Ekiden starts detached.
 *
 * Imports Node built-ins only: drivers/fake-guest.ts and test/doubles/tart/tart-double.ts run
 * it from transpiled copies (see locateGuestScript in fake.ts and the `tart` wrapper).
 */
import { readFileSync } from 'node:fs';

/**
 * Alive and not a zombie (orphans are not always reaped, e.g. in containers). A process of
 * another user (EPERM) counts as alive. Off Linux (no /proc) every signallable pid is alive.
 */
export function isLivePid(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  if (process.platform !== 'linux') return true;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

/** Resolves after `ms`; rejects with the signal's reason on abort. */
export function pause(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * Checks `done` every `intervalMs` until it holds (true) or `timeoutMs` have passed (false).
 * `done` is checked at least once, and once more when the time is up.
 */
export async function waitUntil(
  done: () => boolean | Promise<boolean>,
  opts: { timeoutMs: number; intervalMs: number; signal?: AbortSignal },
): Promise<boolean> {
  const deadline = Date.now() + opts.timeoutMs;
  for (;;) {
    if (await done()) return true;
    if (Date.now() >= deadline) return false;
    await pause(opts.intervalMs, opts.signal);
  }
}

/**
 * The environment of a process started detached from the worker (a fake guest, QEMU): PATH
 * and locale only, so no secret of the worker's environment leaks into it.
 */
export function minimalEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const key of ['PATH', 'LANG', 'LC_ALL', 'TZ', 'TMPDIR']) if (process.env[key]) env[key] = process.env[key];
  return env;
}
