/**
 * TEST AND DEMO INFRASTRUCTURE — not a hypervisor. Process bookkeeping for the fake driver's
 * "VMs", shared by the host side (drivers/fake.ts) and the guest process (drivers/fake-guest.ts).
 *
 * A fake VM's processes are real host processes. Every process a guest starts inherits the
 * environment variable EKIDEN_FAKE_VM=<instance id>, so on Linux all of them, including ones
 * that left the guest's process groups with `setsid`, are found by scanning /proc/<pid>/environ.
 * Elsewhere (macOS) the guest records the process group of each command it runs instead, which
 * misses processes that called setsid themselves.
 *
 * Imports Node built-ins and ./procs.js only: the fake driver may run this file from a
 * transpiled copy.
 */
import { execFile } from 'node:child_process';
import { readFile, readdir } from 'node:fs/promises';
import { promisify } from 'node:util';
import { isLivePid, pause } from './procs.js';

/** argv marker of a guest process: `node <script> --ekiden-fake-guest <vmDir>`. */
export const GUEST_FLAG = '--ekiden-fake-guest';
/** Environment variable carried by every process of a fake VM. */
export const MARKER_ENV = 'EKIDEN_FAKE_VM';

const hasProcFs = process.platform === 'linux';
const execFileAsync = promisify(execFile);

async function commandLine(pid: number): Promise<string | undefined> {
  try {
    if (hasProcFs) return (await readFile(`/proc/${pid}/cmdline`)).toString('utf8').split('\0').filter(Boolean).join(' ');
    const { stdout } = await execFileAsync('ps', ['-p', String(pid), '-o', 'command=']);
    return stdout.trim();
  } catch {
    return undefined;
  }
}

/** True when `pid` is a live fake-guest process serving `vmDir` (not a reused pid). */
export async function isFakeGuest(pid: number, vmDir: string): Promise<boolean> {
  if (!Number.isInteger(pid) || pid <= 0 || !isLivePid(pid)) return false;
  const cmd = await commandLine(pid);
  return cmd !== undefined && cmd.endsWith(`${GUEST_FLAG} ${vmDir}`);
}

/** Linux: live processes whose environment carries the VM's marker. Elsewhere: undefined. */
export async function markedProcesses(instanceId: string): Promise<number[] | undefined> {
  if (!hasProcFs) return undefined;
  const needle = Buffer.from(`${MARKER_ENV}=${instanceId}\0`);
  const found: number[] = [];
  await Promise.all(
    (await readdir('/proc'))
      .filter((name) => /^\d+$/.test(name) && Number(name) !== process.pid)
      .map(async (name) => {
        let env: Buffer;
        try {
          env = await readFile(`/proc/${name}/environ`);
        } catch {
          return; // gone, or another user's
        }
        const at = env.indexOf(needle);
        if (at === 0 || (at > 0 && env[at - 1] === 0)) found.push(Number(name));
      }),
  );
  return found;
}

export interface VmProcessRefs {
  vmDir: string;
  instanceId?: string;
  /** Pid recorded for the guest process. */
  guestPid?: number;
  /** File of process group ids, one a line (the non-Linux fallback). */
  pgidsFile?: string;
}

/** Live processes of a fake VM. Negative numbers are process groups (non-Linux fallback). */
export async function vmProcesses(refs: VmProcessRefs): Promise<number[]> {
  const out = new Set<number>();
  if (refs.guestPid !== undefined && (await isFakeGuest(refs.guestPid, refs.vmDir))) out.add(refs.guestPid);
  const marked = refs.instanceId ? await markedProcesses(refs.instanceId) : undefined;
  if (marked) {
    for (const pid of marked) out.add(pid);
  } else if (refs.pgidsFile) {
    const text = await readFile(refs.pgidsFile, 'utf8').catch(() => '');
    for (const line of text.split('\n')) {
      const pgid = Number(line);
      if (!Number.isInteger(pgid) || pgid <= 1) continue;
      try {
        process.kill(-pgid, 0);
        out.add(-pgid);
      } catch {
        // group is gone
      }
    }
  }
  return [...out];
}

function send(targets: number[], sig: NodeJS.Signals): void {
  for (const t of targets) {
    try {
      process.kill(t, sig);
    } catch {
      // already gone
    }
  }
}

/**
 * SIGTERM to every process of the VM, SIGKILL to what is left after `graceMs`, repeated
 * until nothing is left (a script may fork while it dies).
 */
export async function killVmProcesses(refs: VmProcessRefs, opts: { graceMs: number; signal?: AbortSignal }): Promise<void> {
  let targets = await vmProcesses(refs);
  if (targets.length === 0) return;
  send(targets, 'SIGTERM');
  const deadline = Date.now() + opts.graceMs;
  while (Date.now() < deadline) {
    await pause(Math.min(50, Math.max(1, deadline - Date.now())), opts.signal);
    targets = await vmProcesses(refs);
    if (targets.length === 0) return;
  }
  for (let round = 0; round < 200; round++) {
    targets = await vmProcesses(refs);
    if (targets.length === 0) return;
    send(targets, 'SIGKILL');
    await pause(10);
  }
  throw new Error(`fake VM processes ${targets.join(', ')} survived SIGKILL`);
}
