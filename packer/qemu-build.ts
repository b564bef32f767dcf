/**
 * One QEMU runner image build with Packer: images/packer/qemu (runner.pkr.hcl) over a base
 * Ekiden image, then the output flattened into an image directory (qemu-output.ts).
 *
 * In `buildDir` (the caller's, per run and attempt; must not exist or be empty) this prepares
 * what the template's variables point at: `keys/` with a throwaway SSH key pair for Packer's
 * login (its .pub becomes the guest's authorized key) and a throwaway host key pair for the
 * guest's sshd, `hostname`, and `console.log` (the build VM's serial console). The guest
 * takes keys and hostname through fw_cfg files, never a command line. Variables reach Packer
 * in `vars.json` (0600) only. `buildDir` is left for the caller to remove; the image goes to
 * `destDir`, complete or not at all.
 */
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import ssh2 from 'ssh2';
import { spawn } from 'node:child_process';
import { PackerError, runPackerBuild, templateHash, type PackerBuildResult, type PackerStep } from './packer.js';
import { makeQemuImageDir, type QemuImageDir } from './qemu-output.js';

export interface QemuRunnerBuildOptions {
  /** The base image directory (an Ekiden QEMU image). */
  baseImageDir: string;
  /** The new image directory (must not exist). */
  destDir: string;
  buildDir: string;
  /** Shell commands run as root in the build VM (one /bin/sh -e script). */
  inline?: string[];
  /** Script files (absolute) run as root after `inline`. */
  scripts?: string[];
  /** Default: images/packer/qemu next to this module. */
  template?: string;
  /** More Packer variables (a template of one's own); the build's own variables win. */
  variables?: Record<string, string | number | boolean | string[]>;
  accelerator?: 'tcg' | 'kvm';
  memoryMb?: number;
  cpus?: number;
  /** Loopback port range Packer forwards the guest's sshd to. */
  sshPortRange?: [number, number];
  /** How long Packer waits for the guest's SSH (Go duration). Default "10m". */
  sshTimeout?: string;
  compress?: boolean;
  /** Added to the image's manifest.json. */
  metadata?: Record<string, unknown>;
  packerPath?: string;
  qemuImgPath?: string;
  env?: Record<string, string>;
  signal?: AbortSignal;
  timeoutMs?: number;
  killGraceMs?: number;
  onLine?: (line: string) => void;
  onStep?: (s: PackerStep) => void;
}

export interface QemuRunnerBuildResult {
  image: QemuImageDir;
  packer: PackerBuildResult;
  templateHash: string;
}

/** images/packer/qemu in the sources (packer/) or when compiled (dist/packer/). */
export function defaultQemuTemplateDir(): string {
  const here = path.dirname(fileURLToPath(import.meta.url));
  // packer/ in the checkout (tsx), dist/packer/ (npm run build) or dist/all/packer/ (benches).
  for (const up of ['..', '../..', '../../..']) {
    const candidate = path.resolve(here, up, 'images', 'packer', 'qemu');
    if (existsSync(path.join(candidate, 'runner.pkr.hcl'))) return candidate;
  }
  throw new PackerError('not-installed', 'images/packer/qemu/runner.pkr.hcl not found next to packer/', { retryable: false });
}

function virtualSize(qemuImg: string, disk: string, signal?: AbortSignal): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(qemuImg, ['info', '--output=json', '-U', disk], { stdio: ['ignore', 'pipe', 'ignore'], signal });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.on('error', (err) => reject(new PackerError('not-installed', `cannot run ${qemuImg}: ${err.message}`, { retryable: false, cause: err })));
    child.on('close', (code) => {
      if (code !== 0) return reject(new PackerError('build', `${qemuImg} info ${disk} exited with ${code}`, { retryable: false }));
      resolve((JSON.parse(out) as { 'virtual-size': number })['virtual-size']);
    });
  });
}

/** Writes the per-build keys and hostname; returns their paths. */
async function writeBuildFiles(buildDir: string): Promise<{ keysDir: string; hostnameFile: string; consoleLog: string }> {
  const keysDir = path.join(buildDir, 'keys');
  await fs.mkdir(keysDir, { recursive: true, mode: 0o700 });
  const name = `ekiden-packer-${randomBytes(3).toString('hex')}`;
  const host = ssh2.utils.generateKeyPairSync('ed25519', { comment: `${name} host key` });
  const client = ssh2.utils.generateKeyPairSync('ed25519', { comment: `packer@${name}` });
  await fs.writeFile(path.join(keysDir, 'host_ed25519'), host.private, { mode: 0o600 });
  await fs.writeFile(path.join(keysDir, 'host_ed25519.pub'), `${host.public}\n`, { mode: 0o644 });
  await fs.writeFile(path.join(keysDir, 'client_ed25519'), client.private, { mode: 0o600 });
  await fs.writeFile(path.join(keysDir, 'client_ed25519.pub'), `${client.public}\n`, { mode: 0o644 });
  const hostnameFile = path.join(buildDir, 'hostname');
  await fs.writeFile(hostnameFile, name, { mode: 0o644 });
  return { keysDir, hostnameFile, consoleLog: path.join(buildDir, 'console.log') };
}

/**
 * Builds a runner image from `baseImageDir` with the given provisioning. Rejects with a
 * PackerError (see packer.ts); a failed flatten is kind 'build'.
 */
export async function buildQemuRunnerImage(opts: QemuRunnerBuildOptions): Promise<QemuRunnerBuildResult> {
  const buildDir = path.resolve(opts.buildDir);
  const baseDir = await fs.realpath(opts.baseImageDir);
  if (buildDir.includes(',') || baseDir.includes(',')) {
    throw new PackerError('template', 'build and base image paths must not contain commas (QEMU option values)', { retryable: false });
  }
  const template = opts.template ?? defaultQemuTemplateDir();
  const hash = await templateHash(template);
  const qemuImg = opts.qemuImgPath ?? 'qemu-img';
  const manifest = JSON.parse(await fs.readFile(path.join(baseDir, 'manifest.json'), 'utf8')) as { disk?: string };
  const size = await virtualSize(qemuImg, path.join(baseDir, manifest.disk ?? 'disk.qcow2'), opts.signal);
  // The build dir must be empty for runPackerBuild: the build files go in a sub-directory
  // created after it checked.
  const pkDir = path.join(buildDir, 'packer');
  const filesDir = path.join(buildDir, 'files');
  const existing = await fs.readdir(buildDir).catch(() => [] as string[]);
  if (existing.length > 0) throw new PackerError('build', `build dir ${buildDir} is not empty`, { retryable: false });
  const files = await writeBuildFiles(filesDir);
  const [portMin, portMax] = opts.sshPortRange ?? [2222, 4444];
  const result = await runPackerBuild({
    template,
    buildDir: pkDir,
    variables: {
      ...opts.variables,
      base_dir: baseDir,
      keys_dir: files.keysDir,
      hostname_file: files.hostnameFile,
      console_log: files.consoleLog,
      disk_size: `${Math.ceil(size / 1024 / 1024)}M`,
      accelerator: opts.accelerator ?? 'tcg',
      extra_append: (opts.accelerator ?? 'tcg') === 'tcg' ? 'mitigations=off' : '',
      machine_id: randomBytes(16).toString('hex'),
      memory: opts.memoryMb ?? 1024,
      cpus: opts.cpus ?? 2,
      ssh_port_min: portMin,
      ssh_port_max: portMax,
      ssh_timeout: opts.sshTimeout ?? '10m',
      inline: opts.inline ?? [],
      scripts: opts.scripts ?? [],
    },
    ...(opts.packerPath ? { packerPath: opts.packerPath } : {}),
    ...(opts.env ? { env: opts.env } : {}),
    ...(opts.signal ? { signal: opts.signal } : {}),
    ...(opts.timeoutMs !== undefined ? { timeoutMs: opts.timeoutMs } : {}),
    ...(opts.killGraceMs !== undefined ? { killGraceMs: opts.killGraceMs } : {}),
    ...(opts.onLine ? { onLine: opts.onLine } : {}),
    ...(opts.onStep ? { onStep: opts.onStep } : {}),
  });
  try {
    const image = await makeQemuImageDir({
      packerOutputDir: result.outputDir,
      baseImageDir: baseDir,
      destDir: opts.destDir,
      metadata: { ...opts.metadata, templateHash: hash, builder: 'packer-qemu', buildSeconds: Math.round(result.durationMs / 1000) },
      ...(opts.compress !== undefined ? { compress: opts.compress } : {}),
      qemuImgPath: qemuImg,
      ...(opts.signal ? { signal: opts.signal } : {}),
    });
    return { image, packer: result, templateHash: hash };
  } catch (err) {
    if (opts.signal?.aborted) throw new PackerError('cancelled', 'image build cancelled while flattening the disk', { retryable: false, cause: err });
    throw new PackerError('build', 'flattening the Packer output into an image failed', { retryable: true, cause: err });
  } finally {
    await fs.rm(result.outputDir, { recursive: true, force: true });
  }
}
