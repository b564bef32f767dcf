/**
 * Which QEMU accelerator really works on this host. `/dev/kvm` existing proves little (a PVM
 * flavour of KVM, for one, cannot boot stock kernels), so the probe boots the guest kernel
 * with `-accel kvm -cpu host` and watches the serial console for the kernel starting its
 * init process. The verdict is cached on disk, keyed by the QEMU binary and the host kernel.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { constants as fsConstants } from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

export type Accel = 'kvm' | 'tcg';

export interface AccelVerdict {
  accel: Accel;
  /** Why: the probe's outcome in a few words. */
  detail: string;
  qemuBinary: string;
  hostKernel: string;
  probedAt: string;
  probeMs?: number;
}

/** The serial console shows the kernel handing over to userspace. */
const USERSPACE_MARKERS = [/Run \/\S+ as init process/, /Freeing unused kernel (image )?memory/];

function pause(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Boots `kernel`+`initrd` under KVM for at most `timeoutMs` and reports whether the kernel
 * reached userspace. Never throws: any failure is a 'tcg' verdict with the reason.
 */
export async function probeKvm(args: {
  qemuBinary: string;
  kernel: string;
  initrd: string;
  workDir: string;
  timeoutMs: number;
}): Promise<{ ok: boolean; detail: string; ms: number }> {
  const started = Date.now();
  try {
    await fs.access('/dev/kvm', fsConstants.R_OK | fsConstants.W_OK);
  } catch (err) {
    return { ok: false, detail: `/dev/kvm not usable (${(err as NodeJS.ErrnoException).code ?? 'error'})`, ms: 0 };
  }
  await fs.mkdir(args.workDir, { recursive: true });
  const log = path.join(args.workDir, `kvm-probe-${process.pid}-${randomBytes(3).toString('hex')}.log`);
  const child = spawn(
    args.qemuBinary,
    [
      '-machine', 'q35', '-accel', 'kvm', '-cpu', 'host', '-m', '256', '-smp', '1',
      '-nodefaults', '-no-user-config', '-display', 'none', '-monitor', 'none', '-no-reboot',
      '-serial', `file:${log.replace(/,/g, ',,')}`,
      '-kernel', args.kernel, '-initrd', args.initrd,
      '-append', 'console=ttyS0 loglevel=7 panic=-1',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  let exited: string | undefined;
  child.stderr.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-2000)));
  child.on('error', (err) => (exited = err.message));
  child.on('exit', (code, sig) => (exited ??= `exit ${code ?? sig}`));
  try {
    for (;;) {
      const text = await fs.readFile(log, 'utf8').catch(() => '');
      if (USERSPACE_MARKERS.some((re) => re.test(text))) {
        return { ok: true, detail: 'kernel reached userspace under KVM', ms: Date.now() - started };
      }
      if (exited !== undefined) {
        const why = stderr.trim().split('\n').pop() || text.trim().split('\n').pop() || '';
        return { ok: false, detail: `QEMU with KVM ended before userspace (${exited})${why ? `: ${why.slice(0, 300)}` : ''}`, ms: Date.now() - started };
      }
      if (Date.now() - started >= args.timeoutMs) {
        return { ok: false, detail: `kernel did not reach userspace under KVM within ${args.timeoutMs} ms`, ms: Date.now() - started };
      }
      await pause(100);
    }
  } finally {
    if (exited === undefined) {
      child.kill('SIGKILL');
      await new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) resolve();
        else child.once('exit', () => resolve());
      });
    }
    await fs.rm(log, { force: true });
  }
}

/**
 * The cached verdict from `cacheFile` when it is still valid for this QEMU binary and host
 * kernel, else a fresh probe (written to `cacheFile`).
 */
export async function resolveAutoAccel(args: {
  qemuBinary: string;
  kernel: string;
  initrd: string;
  cacheFile: string;
  timeoutMs: number;
}): Promise<AccelVerdict> {
  const hostKernel = `${os.release()} ${os.version()}`;
  try {
    const cached = JSON.parse(await fs.readFile(args.cacheFile, 'utf8')) as AccelVerdict;
    if (cached.qemuBinary === args.qemuBinary && cached.hostKernel === hostKernel && (cached.accel === 'kvm' || cached.accel === 'tcg')) {
      return cached;
    }
  } catch {
    // no or unreadable cache: probe
  }
  const res = await probeKvm({ ...args, workDir: path.dirname(args.cacheFile) });
  const verdict: AccelVerdict = {
    accel: res.ok ? 'kvm' : 'tcg',
    detail: res.detail,
    qemuBinary: args.qemuBinary,
    hostKernel,
    probedAt: new Date().toISOString(),
    probeMs: res.ms,
  };
  const tmp = `${args.cacheFile}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  await fs.mkdir(path.dirname(args.cacheFile), { recursive: true });
  await fs.writeFile(tmp, `${JSON.stringify(verdict, null, 2)}\n`);
  await fs.rename(tmp, args.cacheFile);
  return verdict;
}
