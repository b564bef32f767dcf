/**
 * Real Packer builds of images/packer/qemu over the cached Debian guest image (Packer 1.6.6's
 * qemu builder, QEMU under TCG where KVM does not work). Skipped with the reason when packer,
 * qemu-system-x86_64/qemu-img, debugfs or the guest image are missing (CI: apt-get install
 * packer qemu-system-x86 qemu-utils e2fsprogs debootstrap, then images/ensure-image.sh).
 *
 * Two boots of a build VM in all: one build that writes a marker file, is flattened into an
 * image directory and booted once with the QEMU driver (smoke.ts) to read the marker back; one
 * build cancelled when it reports "Waiting for SSH". A broken template fails before any boot.
 *
 * Env: EKIDEN_QEMU_IMAGES_DIR, EKIDEN_QEMU_IMAGE (as test/drivers/qemu.test.ts).
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import fs from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_QEMU_IMAGE, defaultQemuImagesDir, imageRefDir, loadQemuImage } from '../../drivers/qemu-image.js';
import { PackerError, processesMentioning, runPackerBuild, templateHash, type PackerStep } from '../../packer/packer.js';
import { buildQemuRunnerImage, defaultQemuTemplateDir } from '../../packer/qemu-build.js';
import { smokeTestQemuImage } from '../../packer/smoke.js';

const IMAGES_DIR = process.env.EKIDEN_QEMU_IMAGES_DIR || defaultQemuImagesDir();
const IMAGE = process.env.EKIDEN_QEMU_IMAGE || DEFAULT_QEMU_IMAGE;

function onPath(bin: string): boolean {
  return (process.env.PATH ?? '').split(':').some((d) => d && existsSync(path.join(d, bin)));
}

function skipReason(): string {
  const missing = ['packer', 'qemu-system-x86_64', 'qemu-img', 'debugfs'].filter((b) => !onPath(b));
  if (missing.length) return `${missing.join(', ')} not installed (apt-get install packer qemu-system-x86 qemu-utils e2fsprogs)`;
  const dir = imageRefDir(IMAGES_DIR, IMAGE);
  if (!existsSync(path.join(dir, 'manifest.json'))) return `guest image ${IMAGE} not built in ${IMAGES_DIR} (run images/ensure-image.sh as root)`;
  return '';
}

const SKIP = skipReason();
if (SKIP) console.warn(`test/packer/qemu-build.test.ts skipped: ${SKIP}`);

/** A file of an ext4 filesystem image (the guest's disk has no partition table). */
function debugfsCat(raw: string, file: string): string {
  return execFileSync('debugfs', ['-R', `cat ${file}`, raw], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
}

function debugfsLs(raw: string, dir: string): string[] {
  const out = execFileSync('debugfs', ['-R', `ls -p ${dir}`, raw], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  return out.split('\n').map((l) => l.split('/')[5] ?? '').filter((n) => n && n !== '.' && n !== '..');
}

describe.skipIf(SKIP !== '')(`Packer builds of the QEMU runner image${SKIP ? ` — skipped: ${SKIP}` : ''}`, () => {
  let root: string;
  let baseDir: string;

  beforeAll(async () => {
    root = await fs.mkdtemp(path.join(tmpdir(), 'ekiden-packer-test-'));
    baseDir = (await loadQemuImage(IMAGES_DIR, IMAGE))!.dir;
  });

  afterAll(async () => {
    if (!root) return;
    const left = processesMentioning(root);
    for (const pid of left) process.kill(pid, 'SIGKILL');
    await fs.rm(root, { recursive: true, force: true });
    expect(left).toEqual([]);
  });

  it('a broken template fails validation: kind template, not retryable, nothing left but the build dir', async () => {
    const tpl = path.join(root, 'broken');
    await fs.mkdir(tpl);
    await fs.writeFile(
      path.join(tpl, 'broken.pkr.hcl'),
      'variable "output_dir" { type = string }\nsource "qemu" "x" {\n  output_directory = var.output_dir\n  no_such_field = 1\n}\nbuild { sources = ["source.qemu.x"] }\n',
    );
    const buildDir = path.join(root, 'broken-build');
    const lines: string[] = [];
    const err = await runPackerBuild({ template: tpl, buildDir, variables: {}, onLine: (l) => lines.push(l) }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PackerError);
    const pe = err as PackerError;
    expect(pe.kind).toBe('template');
    expect(pe.retryable).toBe(false);
    expect(pe.lastLines.join('\n')).toMatch(/no_such_field/);
    expect(pe.message).not.toMatch(/no_such_field/);
    expect(lines.join('\n')).toMatch(/no_such_field/);
    expect(existsSync(path.join(buildDir, 'output'))).toBe(false);
    expect((await fs.stat(path.join(buildDir, 'vars.json'))).mode & 0o777).toBe(0o600);
  });

  it('a missing packer binary is kind not-installed', async () => {
    const err = (await runPackerBuild({ template: defaultQemuTemplateDir(), buildDir: path.join(root, 'nopacker'), variables: {}, packerPath: path.join(root, 'no-packer') }).catch((e: unknown) => e)) as PackerError;
    expect(err.kind).toBe('not-installed');
  });

  it('cancelled at "Waiting for SSH": kind cancelled, no packer or qemu left, no output', async () => {
    const buildDir = path.join(root, 'cancel-build');
    const ac = new AbortController();
    const steps: PackerStep[] = [];
    const t0 = Date.now();
    const err = (await buildQemuRunnerImage({
      baseImageDir: baseDir,
      destDir: path.join(root, 'cancel-image'),
      buildDir,
      inline: ['echo never > /etc/ekiden-build-id'],
      onStep: (s) => {
        steps.push(s);
        if (s.step === 'Waiting for SSH') ac.abort(new Error('test cancels'));
      },
      signal: ac.signal,
    }).catch((e: unknown) => e)) as PackerError;
    const ms = Date.now() - t0;
    expect(err).toBeInstanceOf(PackerError);
    expect(err.kind).toBe('cancelled');
    expect(err.step).toBe('Waiting for SSH');
    expect(steps.map((s) => s.step)).toContain('Starting VM');
    expect(processesMentioning(buildDir)).toEqual([]);
    expect(existsSync(path.join(buildDir, 'packer', 'output'))).toBe(false);
    expect(existsSync(path.join(root, 'cancel-image'))).toBe(false);
    console.log(`cancelled build: ${ms} ms from start to rejection, steps: ${steps.map((s) => s.step).join(' → ')}`);
  }, 180_000);

  it('builds the template with a one-line change, flattens it into an image dir that boots and carries the change', async () => {
    const buildId = randomBytes(8).toString('hex');
    const buildDir = path.join(root, 'build');
    const destDir = path.join(root, 'image');
    const steps: PackerStep[] = [];
    const t0 = Date.now();
    const res = await buildQemuRunnerImage({
      baseImageDir: baseDir,
      destDir,
      buildDir,
      inline: [`echo ${buildId} > /etc/ekiden-build-id`],
      metadata: { buildId },
      onStep: (s) => steps.push(s),
      timeoutMs: 600_000,
    }).catch((err: unknown) => {
      // Packer's own words, when it refuses: the error keeps them out of its message.
      if (err instanceof PackerError) throw new Error(`${err.message}\n${err.lastLines.join('\n')}`, { cause: err });
      throw err;
    });
    const buildMs = Date.now() - t0;
    expect(steps.map((s) => s.step)).toEqual(expect.arrayContaining(['Waiting for SSH', 'Provisioning with shell script', 'Gracefully halting virtual machine']));
    expect(res.packer.artifacts).toEqual([{ builder: 'qemu.runner', id: 'VM', files: [path.join(buildDir, 'packer', 'output', 'disk.qcow2')] }]);
    expect(res.templateHash).toBe(await templateHash(defaultQemuTemplateDir()));
    expect(existsSync(path.join(buildDir, 'packer', 'output'))).toBe(false); // the overlay went into the image
    expect(processesMentioning(buildDir)).toEqual([]);

    // The image dir: self-contained, as the QEMU driver loads it.
    expect(readdirSync(destDir).sort()).toEqual(['disk.qcow2', 'initrd.img', 'manifest.json', 'vmlinuz']);
    const info = JSON.parse(execFileSync('qemu-img', ['info', '--output=json', path.join(destDir, 'disk.qcow2')], { encoding: 'utf8' })) as Record<string, unknown>;
    expect(info['backing-filename']).toBeUndefined();
    const baseInfo = JSON.parse(execFileSync('qemu-img', ['info', '--output=json', '-U', path.join(baseDir, 'disk.qcow2')], { encoding: 'utf8' })) as Record<string, unknown>;
    expect(info['virtual-size']).toBe(baseInfo['virtual-size']);
    const image = (await loadQemuImage(root, `qemu:${destDir}`))!;
    const base = (await loadQemuImage(IMAGES_DIR, IMAGE))!;
    expect(image.manifest).toMatchObject({ name: 'image', buildId, base: base.manifest.digest, templateHash: res.templateHash, append: base.append, username: 'runner', runnerDir: base.manifest.runnerDir });
    expect(image.manifest.digest).toBe(res.image.digest);
    expect(image.manifest.digest).not.toBe(base.manifest.digest);

    // On the disk: the marker, and nothing of the build VM's keys, hostname or machine id.
    const raw = path.join(root, 'disk.raw');
    execFileSync('qemu-img', ['convert', '-O', 'raw', path.join(destDir, 'disk.qcow2'), raw]);
    expect(debugfsCat(raw, '/etc/ekiden-build-id').trim()).toBe(buildId);
    expect(debugfsLs(raw, '/etc/ssh').filter((n) => n.startsWith('ssh_host_'))).toEqual([]);
    expect(debugfsCat(raw, '/home/runner/.ssh/authorized_keys')).toBe('');
    expect(debugfsCat(raw, '/etc/hostname').trim()).toBe('ekiden');
    expect(debugfsCat(raw, '/etc/machine-id')).toBe('');
    expect(debugfsLs(raw, '/var/lib/systemd')).not.toContain('random-seed');
    await fs.rm(raw);

    // Boots with the QEMU driver; the runner is there.
    const smoke = await smokeTestQemuImage({ imageDir: destDir, dataDir: path.join(root, 'smoke'), files: ['/etc/ekiden-build-id'], timeoutMs: 240_000 });
    expect(smoke.files['/etc/ekiden-build-id']?.trim()).toBe(buildId);
    expect(smoke.runnerVersion).toMatch(/^\d+\.\d+\.\d+$/);
    console.log(`packer build + flatten: ${buildMs} ms (packer ${res.packer.durationMs} ms); smoke boot to SSH ${smoke.bootMs} ms; runner ${smoke.runnerVersion}`);
  }, 900_000);
});
