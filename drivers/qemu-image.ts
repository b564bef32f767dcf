/**
 * Guest images of the QEMU driver: what `images/build-debian.sh` leaves in the image cache,
 * and the image refs that name them.
 *
 * Image ref: `qemu:<name>` names the directory `<imagesDir>/<name>` (a built image
 * `debian-bookworm-<hash>`, or an alias symlink such as `debian-bookworm-runner` that the
 * builder points at its latest build); `qemu:/absolute/dir` names any directory. A directory
 * is an image when it holds `manifest.json`, `disk.qcow2`, `vmlinuz` and `initrd.img` (file
 * names as the manifest says). Registry images (`HOST[:PORT]/REPO@sha256:…`) are image
 * directories of the same shape in the host's image cache; drivers/qemu-oci.ts names them.
 */
import { errCode } from './vm-dirs.js';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, existsSync } from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { DriverError } from './types.js';

export const QEMU_IMAGE_PREFIX = 'qemu:';
/** The alias the builder maintains by default: `qemu:debian-bookworm-runner`. */
export const DEFAULT_QEMU_IMAGE = `${QEMU_IMAGE_PREFIX}debian-bookworm-runner`;

/** `${XDG_CACHE_HOME:-~/.cache}/ekiden/images`, where the builder puts images. */
export function defaultQemuImagesDir(env: NodeJS.ProcessEnv = process.env): string {
  const cache = env.XDG_CACHE_HOME || path.join(env.HOME || os.homedir(), '.cache');
  return path.join(cache, 'ekiden', 'images');
}

export interface QemuImageManifest {
  format: number;
  name?: string;
  /** `sha256:<hex>` of disk.qcow2; filled in (once) by the driver when missing. */
  digest?: string;
  kernel?: string;
  initrd?: string;
  disk?: string;
  /** Kernel command line (root device, console, …); the driver appends per-VM settings. */
  append?: string;
  username?: string;
  runnerDir?: string;
  [key: string]: unknown;
}

export interface QemuImage {
  ref: string;
  /** Real path of the image directory (aliases resolved). */
  dir: string;
  manifest: QemuImageManifest;
  disk: string;
  kernel: string;
  initrd: string;
  append: string;
  username: string;
}

const NAME = /^[a-z0-9][a-z0-9._-]{0,127}$/;

/** Directory an image ref names (not checked for existence). */
export function imageRefDir(imagesDir: string, ref: string): string {
  if (!ref.startsWith(QEMU_IMAGE_PREFIX)) {
    throw new DriverError('invalid', `image "${ref}" is not a local QEMU image ref; use qemu:<name> (e.g. ${DEFAULT_QEMU_IMAGE}) or qemu:/absolute/dir (registry images, HOST/REPO@sha256:…, come from the image cache: drivers/qemu-oci.ts)`);
  }
  const rest = ref.slice(QEMU_IMAGE_PREFIX.length);
  if (path.isAbsolute(rest)) return path.normalize(rest);
  if (!NAME.test(rest) || rest.includes('..')) {
    throw new DriverError('invalid', `image "${ref}": the name must be lower-case letters, digits, '.', '_' or '-'`);
  }
  return path.join(path.resolve(imagesDir), rest);
}


/** The image, or undefined when it is not (completely) there. */
export async function loadQemuImage(imagesDir: string, ref: string): Promise<QemuImage | undefined> {
  const named = imageRefDir(imagesDir, ref);
  let dir: string;
  let manifest: QemuImageManifest;
  try {
    dir = await fs.realpath(named);
    manifest = JSON.parse(await fs.readFile(path.join(dir, 'manifest.json'), 'utf8')) as QemuImageManifest;
  } catch (err) {
    if (errCode(err) === 'ENOENT' || errCode(err) === 'ENOTDIR') return undefined;
    throw new DriverError('failed', `image ${ref}: manifest.json in ${named} is unreadable`, { cause: err });
  }
  const file = (name: unknown, fallback: string) => path.join(dir, typeof name === 'string' && name && !name.includes('/') ? name : fallback);
  const image: QemuImage = {
    ref,
    dir,
    manifest,
    disk: file(manifest.disk, 'disk.qcow2'),
    kernel: file(manifest.kernel, 'vmlinuz'),
    initrd: file(manifest.initrd, 'initrd.img'),
    append: typeof manifest.append === 'string' && manifest.append ? manifest.append : 'root=/dev/vda rw console=ttyS0',
    username: typeof manifest.username === 'string' && manifest.username ? manifest.username : 'runner',
  };
  for (const f of [image.disk, image.kernel, image.initrd]) if (!existsSync(f)) return undefined;
  return image;
}

const digestMemo = new Map<string, Promise<string>>();

/**
 * `sha256:<hex>` of the image's disk.qcow2: from the manifest, else computed once and written
 * back into manifest.json (kept in memory when the cache is not writable).
 */
export async function imageDigest(image: QemuImage, signal?: AbortSignal): Promise<string> {
  if (typeof image.manifest.digest === 'string' && /^sha256:[0-9a-f]{64}$/.test(image.manifest.digest)) return image.manifest.digest;
  const st = await fs.stat(image.disk);
  const key = `${image.disk}\0${st.size}\0${st.mtimeMs}`;
  let p = digestMemo.get(key);
  if (!p) {
    p = computeDigest(image, signal);
    digestMemo.set(key, p);
    p.catch(() => digestMemo.delete(key));
  }
  return p;
}

async function computeDigest(image: QemuImage, signal?: AbortSignal): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(image.disk, { signal, highWaterMark: 1 << 20 })) hash.update(chunk as Buffer);
  const digest = `sha256:${hash.digest('hex')}`;
  const file = path.join(image.dir, 'manifest.json');
  const tmp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  try {
    await fs.writeFile(tmp, `${JSON.stringify({ ...image.manifest, digest }, null, 2)}\n`, { mode: 0o644 });
    await fs.rename(tmp, file);
  } catch {
    await fs.rm(tmp, { force: true }); // read-only cache: keep the digest in memory only
  }
  return digest;
}

/** Path of images/ensure-image.sh (from drivers/ in the sources or dist/drivers/ when compiled). */
export function imageBuilderScript(): string {
  const here = path.dirname(fileURLToPath(import.meta.url));
  for (const up of ['..', '../..']) {
    const candidate = path.resolve(here, up, 'images', 'ensure-image.sh');
    if (existsSync(candidate)) return candidate;
  }
  throw new DriverError('not-found', 'images/ensure-image.sh not found next to the QEMU driver');
}

/**
 * Builds the default guest image when it is not cached (runs images/ensure-image.sh: needs
 * root, debootstrap, qemu-utils and the Debian mirror; minutes on a cold cache, instant when
 * cached). Output goes to this process's stderr. Resolves to the image directory.
 */
export async function buildQemuImage(args: { imagesDir?: string; name?: string; runnerTarball?: string; signal?: AbortSignal } = {}): Promise<string> {
  const argv = [imageBuilderScript(), '--print-dir'];
  if (args.imagesDir) argv.push('--out', args.imagesDir);
  if (args.name) argv.push('--name', args.name);
  if (args.runnerTarball) argv.push('--runner-tarball', args.runnerTarball);
  return new Promise((resolve, reject) => {
    const child = spawn('bash', argv, { stdio: ['ignore', 'pipe', 'inherit'], signal: args.signal });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.on('error', (err) => reject(new DriverError('failed', `image builder: ${err.message}`, { cause: err })));
    child.on('close', (code) => {
      if (code === 0) resolve(out.trim().split('\n').pop() ?? '');
      else reject(new DriverError('failed', `image builder exited with ${code}`));
    });
  });
}
