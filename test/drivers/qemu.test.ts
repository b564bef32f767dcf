/**
 * QemuDriver against real VMs: QEMU (TCG, or KVM where it works), the Debian guest image from
 * images/build-debian.sh, real SSH. Skipped with the reason when qemu-system-x86_64/qemu-img
 * are not installed or the image is not built (CI: apt-get install qemu-system-x86 qemu-utils
 * debootstrap, then images/ensure-image.sh).
 *
 * Two boots in all: one VM goes the whole way (clone, start, SSH, a job through the runner
 * stand-in against the GitHub emulator, a restarted worker, graceful stop, delete); a second
 * one is SIGKILLed right after start.
 *
 * Env: EKIDEN_QEMU_IMAGES_DIR (default ~/.cache/ekiden/images), EKIDEN_QEMU_IMAGE (default
 * qemu:debian-bookworm-runner), EKIDEN_QEMU_ACCEL (default auto).
 */
import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseVmName, runToken, vmName } from '../../core/names.js';
import { QemuDriver, type QemuDriverOptions } from '../../drivers/qemu.js';
import { DEFAULT_QEMU_IMAGE, defaultQemuImagesDir, imageRefDir, loadQemuImage } from '../../drivers/qemu-image.js';
import { GitHubEmulator } from '../../emulator/github/server.js';
import { createJit } from '../../emulator/github/testing.js';
import { sshExec, waitForSsh } from '../../ssh/client.js';
import { launchRunner, runnerStatus } from '../../ssh/runner.js';
import { driverError } from '../support/rejections.js';
import { errorMessage } from '../../core/failures.js';

const IMAGES_DIR = process.env.EKIDEN_QEMU_IMAGES_DIR || defaultQemuImagesDir();
const IMAGE = process.env.EKIDEN_QEMU_IMAGE || DEFAULT_QEMU_IMAGE;
const ACCEL = (process.env.EKIDEN_QEMU_ACCEL || 'auto') as QemuDriverOptions['accel'];
const BOOT_TIMEOUT_MS = 240_000;

function onPath(bin: string): boolean {
  return (process.env.PATH ?? '').split(':').some((d) => d && existsSync(join(d, bin)));
}

function skipReason(): string {
  const missing = ['qemu-system-x86_64', 'qemu-img'].filter((b) => !onPath(b));
  if (missing.length) return `${missing.join(' and ')} not installed (apt-get install qemu-system-x86 qemu-utils)`;
  let dir: string;
  try {
    dir = imageRefDir(IMAGES_DIR, IMAGE);
  } catch (err) {
    return errorMessage(err);
  }
  if (!existsSync(join(dir, 'manifest.json'))) return `guest image ${IMAGE} not built in ${IMAGES_DIR} (run images/ensure-image.sh as root)`;
  return '';
}

const SKIP = skipReason();
if (SKIP) console.warn(`test/drivers/qemu.test.ts skipped: ${SKIP}`);

/** Pids of live processes whose argv mentions `needle`. */
function pidsMentioning(needle: string): number[] {
  const out: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      const argv = readFileSync(`/proc/${entry}/cmdline`, 'utf8');
      if (argv.includes(needle)) out.push(Number(entry));
    } catch {
      // gone
    }
  }
  return out;
}

function newName(): string {
  return vmName({ pool: 'qemutest', token: runToken(randomUUID()), attempt: 1 });
}

describe.skipIf(SKIP !== '')(`QemuDriver with real VMs${SKIP ? ` — skipped: ${SKIP}` : ''}`, () => {
  let root: string;
  let driver: QemuDriver;
  const created: string[] = [];
  const opts = (): QemuDriverOptions => ({ root, imagesDir: IMAGES_DIR, accel: ACCEL, cpu: 2, memoryMb: 1024, diskGb: 10 });

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'ekiden-qemu-test-'));
    driver = new QemuDriver(opts());
  });

  afterAll(async () => {
    if (!driver) return;
    for (const name of created) await driver.delete({ name }).catch(() => {});
    const leftovers = root ? pidsMentioning(root) : [];
    for (const pid of leftovers) process.kill(pid, 'SIGKILL');
    if (root) await rm(root, { recursive: true, force: true });
    expect(leftovers).toEqual([]);
  });

  it('images: local image and pull give the disk digest; bad refs are invalid, missing ones not-found', async () => {
    const local = await driver.localImage({ image: IMAGE });
    expect(local?.digest).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(await driver.pullImage({ image: IMAGE })).toEqual(local);
    expect(await driver.localImage({ image: 'qemu:no-such-image' })).toBeUndefined();
    expect((await driverError(driver.pullImage({ image: 'qemu:no-such-image' }))).code).toBe('not-found');
    expect((await driverError(driver.pullImage({ image: 'ghcr.io/x/y:1' }))).code).toBe('invalid');
    expect((await driverError(driver.clone({ image: 'qemu:no-such-image', name: newName() }))).code).toBe('not-found');
  });

  it('accel auto: probes once whether KVM boots the guest kernel, caches the verdict', async () => {
    const image = (await loadQemuImage(IMAGES_DIR, IMAGE))!;
    const probe = new QemuDriver({ ...opts(), accel: 'auto' });
    const t0 = Date.now();
    const accel = await probe.resolvedAccel({ kernel: image.kernel, initrd: image.initrd });
    const probeMs = Date.now() - t0;
    expect(['kvm', 'tcg']).toContain(accel);
    const verdict = JSON.parse(await readFile(join(root, 'accel.json'), 'utf8')) as { accel: string; detail: string };
    expect(verdict.accel).toBe(accel);
    console.log(`accel auto → ${accel} in ${probeMs} ms (${verdict.detail})`);
    const t1 = Date.now();
    expect(await new QemuDriver({ ...opts(), accel: 'auto' }).resolvedAccel({ kernel: image.kernel, initrd: image.initrd })).toBe(accel);
    expect(Date.now() - t1).toBeLessThan(1_000);
  }, 60_000);

  it('missing VMs: stop and delete succeed, get is undefined, start and sshEndpoint are not-found; foreign names are invalid', async () => {
    const name = newName();
    await driver.stop({ name });
    await driver.delete({ name });
    expect(await driver.get({ name })).toBeUndefined();
    expect((await driverError(driver.start({ name }))).code).toBe('not-found');
    expect((await driverError(driver.sshEndpoint({ name, timeoutMs: 100 }))).code).toBe('not-found');
    expect((await driverError(driver.get({ name: 'not-ours' }))).code).toBe('invalid');
  });

  it('clone → start → SSH → a job through the runner → restarted worker sees it → graceful stop → delete', async () => {
    const name = newName();
    created.push(name);
    const dir = driver.vmDir(name);

    const tClone = Date.now();
    await driver.clone({ image: IMAGE, name });
    const cloneMs = Date.now() - tClone;
    const vmJson = await readFile(join(dir, 'vm.json'), 'utf8');
    await driver.clone({ image: IMAGE, name }); // idempotent: nothing changes
    expect(await readFile(join(dir, 'vm.json'), 'utf8')).toBe(vmJson);
    expect((await stat(join(dir, 'keys', 'host_ed25519'))).mode & 0o777).toBe(0o600);
    expect(await driver.get({ name })).toEqual({ name, state: 'stopped', image: IMAGE });
    expect((await driverError(driver.sshEndpoint({ name, timeoutMs: 100 }))).code).toBe('failed');

    const tStart = Date.now();
    await driver.start({ name });
    const startMs = Date.now() - tStart;
    const pid = (await driver.pid({ name }))!;
    expect(pid).toBeGreaterThan(0);
    // The host private key is handed over as a fw_cfg file, never on an argv.
    const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    expect(argv).not.toContain('PRIVATE KEY');
    await driver.start({ name }); // idempotent: same process
    expect(await driver.pid({ name })).toBe(pid);
    expect(await driver.get({ name })).toEqual({ name, state: 'running', image: IMAGE });

    const endpoint = await driver.sshEndpoint({ name, timeoutMs: 10_000 });
    expect(endpoint).toMatchObject({ host: '127.0.0.1', username: 'runner' });
    expect(endpoint.hostKeySha256).toMatch(/^SHA256:/);
    const seen = await waitForSsh({ endpoint, timeoutMs: BOOT_TIMEOUT_MS });
    const bootMs = Date.now() - tStart;
    expect(seen.hostKeySha256).toBe(endpoint.hostKeySha256);

    const res = await sshExec({
      endpoint,
      command:
        'uname -a; id -un; hostname; sudo -n id -u; test -x actions-runner/run.sh && echo runner-ok; ' +
        'df -BG --output=size / | tail -n 1; node --version; ls /etc/ssh/ssh_host_*',
      timeoutMs: 60_000,
    });
    expect(res.exitCode).toBe(0);
    const lines = res.stdout.trim().split('\n');
    expect(lines[0]).toMatch(/^Linux .* x86_64/);
    expect(lines[1]).toBe('runner');
    expect(lines[2]).toBe(name);
    expect(lines[3]).toBe('0');
    expect(lines[4]).toBe('runner-ok');
    expect(Number(lines[5]!.trim().replace(/G$/, ''))).toBeGreaterThanOrEqual(9); // grown to diskGb
    expect(lines.slice(7)).toEqual(['/etc/ssh/ssh_host_ed25519_key', '/etc/ssh/ssh_host_ed25519_key.pub']);
    console.log(`qemu VM ${name}: clone ${cloneMs} ms, start ${startMs} ms, boot to SSH ${bootMs} ms; guest: ${lines[0]}; node ${lines[6]}`);

    // One job through the runner stand-in in the guest, against the emulator on the host
    // (user networking: the host's loopback is 10.0.2.2 from the guest).
    const token = 'ghp_qemu_test';
    const emu = new GitHubEmulator({ tokens: [token], repos: ['octo/hello'], runnerBaseUrl: (url) => url.replace('127.0.0.1', '10.0.2.2') });
    await emu.start();
    try {
      const jit = await createJit(emu, token, '/repos/octo/hello', `ekiden-qemutest-${parseVmName(name)!.token}`, ['self-hosted', 'qemu']);
      const launched = await launchRunner({ endpoint, runnerDir: 'actions-runner', credential: { kind: 'jit', encodedJitConfig: jit.encoded_jit_config } });
      expect(launched.alreadyLaunched).toBe(false);
      const job = emu.queueJob({ repo: 'octo/hello', labels: ['self-hosted', 'qemu'], steps: [{ run: 'uname -s; id -un' }] });
      const done = await emu.waitForJob(job.id, undefined, 120_000);
      expect(done).toMatchObject({ status: 'completed', conclusion: 'success', runner_id: jit.runner.id });
      expect(done.steps[0]!.log).toContain('Linux');
      expect(done.steps[0]!.log).toContain('runner');
      let status = await runnerStatus({ endpoint, runnerDir: 'actions-runner' });
      for (let i = 0; i < 100 && status.running; i++) {
        await new Promise((r) => setTimeout(r, 300));
        status = await runnerStatus({ endpoint, runnerDir: 'actions-runner' });
      }
      expect(status).toMatchObject({ launched: true, running: false, exitCode: 0, jobStarted: true, jobId: String(job.id) });
    } finally {
      await emu.stop();
    }

    // A restarted worker: a new driver over the same root finds the VM running.
    const again = new QemuDriver(opts());
    expect(await again.list()).toContainEqual({ name, state: 'running', image: IMAGE });
    expect(await again.sshEndpoint({ name, timeoutMs: 1_000 })).toEqual(endpoint);

    const tStop = Date.now();
    await again.stop({ name, timeoutMs: 60_000 });
    const stopMs = Date.now() - tStop;
    console.log(`qemu VM ${name}: graceful stop ${stopMs} ms`);
    expect(stopMs).toBeLessThan(60_000);
    expect(await again.console({ name })).toMatch(/reboot: Power down/); // the guest powered itself off
    expect(pidsMentioning(dir)).toEqual([]);
    expect(await driver.get({ name })).toEqual({ name, state: 'stopped', image: IMAGE });
    await again.stop({ name }); // idempotent

    await driver.delete({ name });
    expect(existsSync(dir)).toBe(false);
    expect(await driver.get({ name })).toBeUndefined();
    await driver.delete({ name }); // idempotent
  }, BOOT_TIMEOUT_MS + 240_000);

  it('a SIGKILLed QEMU reads as stopped; delete cleans up', async () => {
    const name = newName();
    created.push(name);
    const dir = driver.vmDir(name);
    await driver.clone({ image: IMAGE, name });
    await driver.start({ name });
    const pid = (await driver.pid({ name }))!;
    expect((await driver.get({ name }))?.state).toBe('running');
    process.kill(pid, 'SIGKILL');
    for (let i = 0; i < 100 && existsSync(`/proc/${pid}/cmdline`) && readFileSync(`/proc/${pid}/cmdline`).length > 0; i++) {
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(await driver.get({ name })).toEqual({ name, state: 'stopped', image: IMAGE });
    expect(await driver.list()).toContainEqual({ name, state: 'stopped', image: IMAGE });
    expect((await driverError(driver.sshEndpoint({ name, timeoutMs: 1_000 }))).code).toBe('failed');
    await driver.stop({ name });
    await driver.delete({ name });
    expect(existsSync(dir)).toBe(false);
    expect(pidsMentioning(dir)).toEqual([]);
    expect(execFileSync('ls', [join(root, 'vms')], { encoding: 'utf8' }).trim()).toBe('');
  }, 120_000);
});
