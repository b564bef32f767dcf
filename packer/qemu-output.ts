/**
 * Packer's QEMU output (a qcow2 overlay whose backing file is the base image's disk) turned
 * into a self-contained Ekiden image directory, as drivers/qemu-image.ts reads it:
 * `disk.qcow2` (flattened with `qemu-img convert -O qcow2`, optionally compressed), `vmlinuz`
 * and `initrd.img` (the build's own when its output has them, else the base image's) and
 * `manifest.json` (the base manifest's description of the guest, this disk's digest, the base
 * image's digest as `base`, and the caller's metadata).
 *
 * `destDir` must not exist; the directory is assembled next to it and renamed into place, so
 * it is either complete or absent. Nothing is written anywhere else.
 */
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, existsSync } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { imageDigest, loadQemuImage, QEMU_IMAGE_PREFIX, type QemuImageManifest } from '../drivers/qemu-image.js';

export interface MakeQemuImageDirArgs {
  /** Packer's output_directory: the overlay (disk.qcow2 or the one *.qcow2), maybe vmlinuz/initrd.img. */
  packerOutputDir: string;
  /** The image the build started from. */
  baseImageDir: string;
  /** The new image directory (must not exist). */
  destDir: string;
  /** Added to manifest.json (e.g. templateHash, buildId, provisioner summary); cannot replace the fields this module sets. */
  metadata?: Record<string, unknown>;
  /** qcow2 compression of the flattened disk (smaller, slower to write; reads are unaffected). */
  compress?: boolean;
  qemuImgPath?: string;
  signal?: AbortSignal;
}

export interface QemuImageDir {
  dir: string;
  manifest: QemuImageManifest;
  digest: string;
}

/** Base manifest fields that describe the guest and stay true after provisioning. */
const INHERITED = ['format', 'os', 'arch', 'username', 'runnerDir', 'runner', 'runnerSource', 'kernelVersion', 'nodeVersion', 'initrdModules', 'diskSize', 'packages'] as const;

function run(bin: string, argv: string[], signal?: AbortSignal): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(bin, argv, { stdio: ['ignore', 'pipe', 'pipe'], signal });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-2000)));
    child.on('error', (e) => reject(new Error(`${bin} ${argv[0]}: ${e.message}`, { cause: e })));
    child.on('close', (code) => {
      if (code === 0) resolve(out);
      else reject(new Error(`${bin} ${argv[0]} exited with ${code}: ${err.trim().split('\n').pop() ?? ''}`));
    });
  });
}

async function sha256File(file: string, signal?: AbortSignal): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file, { signal, highWaterMark: 1 << 20 })) hash.update(chunk as Buffer);
  return `sha256:${hash.digest('hex')}`;
}

/** The overlay Packer left: `disk.qcow2`, else the only `*.qcow2` in the directory. */
async function findOverlay(dir: string): Promise<string> {
  const named = path.join(dir, 'disk.qcow2');
  if (existsSync(named)) return named;
  const qcow = (await fs.readdir(dir)).filter((f) => f.endsWith('.qcow2'));
  if (qcow.length !== 1) throw new Error(`${dir}: expected one .qcow2 disk, found ${qcow.length}`);
  return path.join(dir, qcow[0]!);
}

/** Builds `destDir` from Packer's output; see the module comment. */
export async function makeQemuImageDir(args: MakeQemuImageDirArgs): Promise<QemuImageDir> {
  const qemuImg = args.qemuImgPath ?? 'qemu-img';
  const destDir = path.resolve(args.destDir);
  if (existsSync(destDir)) throw new Error(`${destDir} already exists`);
  const baseDir = path.resolve(args.baseImageDir);
  const base = await loadQemuImage(path.dirname(baseDir), `${QEMU_IMAGE_PREFIX}${baseDir}`);
  if (!base) throw new Error(`${baseDir} is not a complete QEMU image (manifest.json, disk, kernel, initrd)`);
  const baseDigest = await imageDigest(base, args.signal);
  const overlay = await findOverlay(args.packerOutputDir);

  const stage = path.join(path.dirname(destDir), `.${path.basename(destDir)}.tmp-${randomBytes(4).toString('hex')}`);
  await fs.mkdir(stage, { recursive: true, mode: 0o755 });
  try {
    const disk = path.join(stage, 'disk.qcow2');
    await run(qemuImg, ['convert', '-q', '-O', 'qcow2', ...(args.compress ? ['-c'] : []), overlay, disk], args.signal);
    const info = JSON.parse(await run(qemuImg, ['info', '--output=json', disk], args.signal)) as { 'virtual-size': number; 'backing-filename'?: string };
    if (info['backing-filename']) throw new Error(`${disk} still has a backing file (${info['backing-filename']})`);
    for (const [name, fromBase] of [['vmlinuz', base.kernel], ['initrd.img', base.initrd]] as const) {
      const built = path.join(args.packerOutputDir, name);
      await fs.copyFile(existsSync(built) ? built : fromBase, path.join(stage, name));
    }
    for (const f of ['disk.qcow2', 'vmlinuz', 'initrd.img']) await fs.chmod(path.join(stage, f), 0o644);
    const digest = await sha256File(disk, args.signal);
    const inherited: Record<string, unknown> = {};
    for (const k of INHERITED) if (base.manifest[k] !== undefined) inherited[k] = base.manifest[k];
    const manifest: QemuImageManifest = {
      ...inherited,
      ...args.metadata,
      format: typeof base.manifest.format === 'number' ? base.manifest.format : 1,
      name: typeof args.metadata?.name === 'string' ? args.metadata.name : path.basename(destDir),
      digest,
      kernel: 'vmlinuz',
      initrd: 'initrd.img',
      disk: 'disk.qcow2',
      append: base.append,
      username: base.username,
      ...(typeof base.manifest.runnerDir === 'string' ? { runnerDir: base.manifest.runnerDir } : {}),
      base: baseDigest,
      baseName: typeof base.manifest.name === 'string' ? base.manifest.name : path.basename(baseDir),
      virtualSize: info['virtual-size'],
      builtAt: new Date().toISOString(),
    };
    await fs.writeFile(path.join(stage, 'manifest.json'), `${JSON.stringify(manifest, null, 2)}\n`, { mode: 0o644 });
    args.signal?.throwIfAborted();
    await fs.rename(stage, destDir);
    return { dir: destDir, manifest, digest };
  } finally {
    await fs.rm(stage, { recursive: true, force: true });
  }
}
