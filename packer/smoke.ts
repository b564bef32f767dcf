/**
 * Smoke test of a built QEMU image directory: one VM through the project's QEMU driver
 * (clone, start, SSH), a check that the runner is installed in the image's runner directory
 * (manifest `runnerDir`) and which version it is, optionally some files read back, then the
 * VM stopped and deleted whatever happened. The driver's state lives under `dataDir`.
 *
 * Runner version: actions/runner answers `./config.sh --version`; Ekiden's stand-in (a
 * `.standin/` tree next to its run.sh) carries it as `const VERSION = '…'` in its main.js.
 */
import { randomUUID } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { runToken, vmName } from '../core/names.js';
import { QemuDriver } from '../drivers/qemu.js';
import { QEMU_IMAGE_PREFIX } from '../drivers/qemu-image.js';
import { sshExec, waitForSsh } from '../ssh/client.js';

export interface SmokeTestArgs {
  imageDir: string;
  /** QEMU driver root for the smoke VM. */
  dataDir: string;
  signal?: AbortSignal;
  /** Boot to SSH plus the checks. Default 240000. */
  timeoutMs?: number;
  accel?: 'auto' | 'kvm' | 'tcg';
  /** Absolute guest paths to read back (as the image's user, with sudo). */
  files?: string[];
}

export interface SmokeTestResult {
  runnerVersion: string;
  /** start → SSH login works. */
  bootMs: number;
  /** Contents of `files`, by path. */
  files: Record<string, string>;
}

export class SmokeTestError extends Error {
  override readonly name = 'SmokeTestError';
  /** The end of the VM's serial console. */
  readonly consoleTail: string;
  constructor(message: string, consoleTail: string, options?: { cause?: unknown }) {
    super(message, options);
    this.consoleTail = consoleTail;
  }
}

function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/** The guest command printing the runner's version (exit 3: no runner there). */
export function runnerVersionCommand(runnerDir: string): string {
  const d = shellQuote(runnerDir);
  return [
    `cd ${d} 2>/dev/null && [ -x ./run.sh ] || exit 3`,
    `if [ -f .standin/emulator/runner/main.js ]; then sed -n "s/^const VERSION = '\\(.*\\)';.*/\\1/p" .standin/emulator/runner/main.js | head -n 1;`,
    `else ./config.sh --version; fi`,
  ].join('\n');
}

/** Boots the image once and checks the runner; see the module comment. */
export async function smokeTestQemuImage(args: SmokeTestArgs): Promise<SmokeTestResult> {
  const imageDir = path.resolve(args.imageDir);
  const manifest = JSON.parse(await fs.readFile(path.join(imageDir, 'manifest.json'), 'utf8')) as { runnerDir?: string; username?: string };
  const runnerDir = manifest.runnerDir ?? `/home/${manifest.username ?? 'runner'}/actions-runner`;
  const timeoutMs = args.timeoutMs ?? 240_000;
  const deadline = Date.now() + timeoutMs;
  const driver = new QemuDriver({ root: args.dataDir, imagesDir: path.dirname(imageDir), accel: args.accel ?? 'auto', cpu: 2, memoryMb: 1024 });
  const name = vmName({ pool: 'smoke', token: runToken(randomUUID()), attempt: 1 });
  const image = `${QEMU_IMAGE_PREFIX}${imageDir}`;
  const left = () => Math.max(1_000, deadline - Date.now());
  try {
    await driver.clone({ image, name, ...(args.signal ? { signal: args.signal } : {}) });
    const t0 = Date.now();
    await driver.start({ name, ...(args.signal ? { signal: args.signal } : {}) });
    const endpoint = await driver.sshEndpoint({ name, timeoutMs: left(), ...(args.signal ? { signal: args.signal } : {}) });
    await waitForSsh({ endpoint, timeoutMs: left(), ...(args.signal ? { signal: args.signal } : {}) });
    const bootMs = Date.now() - t0;
    const version = await sshExec({ endpoint, command: runnerVersionCommand(runnerDir), timeoutMs: left(), ...(args.signal ? { signal: args.signal } : {}) });
    if (version.exitCode === 3) throw new SmokeTestError(`no runner in ${runnerDir} of ${imageDir}`, '');
    const runnerVersion = version.stdout.trim().split('\n').pop() ?? '';
    if (version.exitCode !== 0 || !/^\d+\.\d+\.\d+/.test(runnerVersion)) {
      throw new SmokeTestError(`runner in ${runnerDir} reports no version (exit ${version.exitCode}): ${version.stderr.trim().slice(0, 200)}`, '');
    }
    const files: Record<string, string> = {};
    for (const f of args.files ?? []) {
      const r = await sshExec({ endpoint, command: `sudo cat -- ${shellQuote(f)}`, timeoutMs: left(), ...(args.signal ? { signal: args.signal } : {}) });
      if (r.exitCode !== 0) throw new SmokeTestError(`cannot read ${f} in the guest (exit ${r.exitCode})`, '');
      files[f] = r.stdout;
    }
    return { runnerVersion, bootMs, files };
  } catch (err) {
    if (err instanceof SmokeTestError) throw err;
    const tail = (await driver.console({ name }).catch(() => '')).split('\n').slice(-20).join('\n');
    throw new SmokeTestError(`smoke test of ${imageDir} failed: ${err instanceof Error ? err.message : String(err)}`, tail, { cause: err });
  } finally {
    // The disk is thrown away: delete kills the VM without a guest shutdown.
    await driver.delete({ name }).catch(() => {});
  }
}
