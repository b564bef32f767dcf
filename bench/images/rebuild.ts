/**
 * bench:images' rebuild phase: a rebuild of the QEMU runner image with a one-line provisioner
 * change (`inline: ["echo <random> > /etc/ekiden-build-id"]`, a value no earlier build had),
 * by Ekiden against a plain `packer build` of exactly the same template and variables, same run,
 * each once (1–3 min each under TCG). Real Packer (Debian's 1.6.6, QEMU builder), template
 * images/packer/qemu, base the cached Debian guest image (images/ensure-image.sh).
 *
 * Ekiden: buildQemuRunnerImage as the image-build activity runs it — build dir with throwaway
 * keys and vars.json (0600), `packer validate`, `packer build -machine-readable` with its output
 * parsed into steps, then the overlay flattened and committed into a self-contained image
 * directory. Timed end to end; Packer's own part (validate + build) reported too.
 * Plain: `packer build -var-file=vars.json <template>` spawned directly, with the vars.json of
 * Ekiden's build (same keys, hostname, console log, machine id, provisioner) except its own
 * output_dir, CHECKPOINT_DISABLE=1 and its own PACKER_CACHE_DIR / TMPDIR as Ekiden sets them;
 * its output (a qcow2 overlay on the base disk) is left as Packer wrote it. The base image's
 * files are read once before either build so both start with them in the page cache.
 * Ratio = Ekiden / plain. Returns { skipped } when packer, qemu or the base image is missing.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createReadStream, existsSync } from 'node:fs';
import fs from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { DEFAULT_QEMU_IMAGE, defaultQemuImagesDir, loadQemuImage } from '../../drivers/qemu-image.js';
import { processesMentioning } from '../../packer/packer.js';
import { buildQemuRunnerImage, defaultQemuTemplateDir } from '../../packer/qemu-build.js';

export interface RebuildOptions {
  /** Default `$EKIDEN_QEMU_IMAGES_DIR` or ~/.cache/ekiden/images. */
  imagesDir?: string;
  /** Base image ref (default qemu:debian-bookworm-runner). */
  baseImage?: string;
  /** Default images/packer/qemu. */
  template?: string;
  /** Default 'tcg'. */
  accelerator?: 'tcg' | 'kvm';
  /** Per build (default 15 min). */
  timeoutMs?: number;
}

export interface RebuildFigures {
  /** buildQemuRunnerImage end to end (keys, validate, build, flatten, commit). */
  ekidenRebuildMs: number;
  /** Of which Packer ran (validate + build). */
  ekidenPackerMs: number;
  /** Of which the flatten and commit of the image directory (the rest). */
  ekidenOutputMs: number;
  /** The plain `packer build`. */
  packerBuildMs: number;
  /** ekidenRebuildMs / packerBuildMs. */
  ratio: number;
  /** ekidenPackerMs / packerBuildMs. */
  packerPartRatio: number;
  /** Of each Packer run, "Waiting for SSH" → "Connected to SSH": the guest's boot under TCG, the noisiest part. */
  ekidenSshWaitMs: number;
  plainSshWaitMs: number;
  /** Bytes of Ekiden's committed image directory. */
  imageBytes: number;
  accelerator: 'tcg' | 'kvm';
}

function onPath(bin: string): boolean {
  return (process.env.PATH ?? '').split(':').some((d) => d && existsSync(path.join(d, bin)));
}

async function readThrough(file: string): Promise<void> {
  for await (const chunk of createReadStream(file, { highWaterMark: 4 * 1024 * 1024 })) void chunk;
}

async function dirBytes(dir: string): Promise<number> {
  let n = 0;
  for (const e of await fs.readdir(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    n += e.isDirectory() ? await dirBytes(p) : (await fs.stat(p)).size;
  }
  return n;
}

/** `packer build -var-file=… template`, output kept to its last lines; rejects on a non-zero exit. */
function plainPackerBuild(varFile: string, template: string, cwd: string, env: NodeJS.ProcessEnv, timeoutMs: number, onLine: (line: string) => void): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('packer', ['build', `-var-file=${varFile}`, template], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    const tail: string[] = [];
    const keep = (d: Buffer) => {
      const lines = d.toString().split('\n').filter((l) => l.trim());
      lines.forEach(onLine);
      tail.push(...lines);
      tail.splice(0, Math.max(0, tail.length - 12));
    };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    const timer = setTimeout(() => {
      if (child.pid) process.kill(-child.pid, 'SIGKILL');
    }, timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve();
      else reject(new Error(`plain packer build exited ${code ?? signal}:\n  ${tail.join('\n  ')}`));
    });
  });
}

export async function measureRebuild(opts: RebuildOptions = {}): Promise<RebuildFigures | { skipped: string }> {
  const missing = ['packer', 'qemu-system-x86_64', 'qemu-img'].filter((b) => !onPath(b));
  if (missing.length) return { skipped: `${missing.join(', ')} not installed (apt-get install packer qemu-system-x86 qemu-utils)` };
  const imagesDir = opts.imagesDir ?? (process.env.EKIDEN_QEMU_IMAGES_DIR || defaultQemuImagesDir());
  const baseRef = opts.baseImage ?? DEFAULT_QEMU_IMAGE;
  const base = await loadQemuImage(imagesDir, baseRef).catch(() => undefined);
  if (!base) return { skipped: `base image ${baseRef} not in ${imagesDir} (run images/ensure-image.sh)` };
  const template = opts.template ?? defaultQemuTemplateDir();
  const accelerator = opts.accelerator ?? 'tcg';
  const timeoutMs = opts.timeoutMs ?? 15 * 60_000;

  const root = await fs.mkdtemp(path.join(tmpdir(), 'ekiden-bench-rebuild-'));
  try {
    for (const f of await fs.readdir(base.dir)) await readThrough(path.join(base.dir, f));
    const marker = randomBytes(8).toString('hex');
    const inline = [`echo ${marker} > /etc/ekiden-build-id`];
    console.log(`rebuild: template ${template}, base ${base.dir}, provisioner ${JSON.stringify(inline)}, ${accelerator}`);

    // Ekiden.
    const ekidenBuildDir = path.join(root, 'ekiden-build');
    let lastStep = '';
    const ekidenAt: Record<string, number> = {};
    const t0 = performance.now();
    const built = await buildQemuRunnerImage({
      baseImageDir: base.dir,
      destDir: path.join(root, 'ekiden-image'),
      buildDir: ekidenBuildDir,
      inline,
      template,
      accelerator,
      timeoutMs,
      onStep: (s) => {
        if (s.step === lastStep) return;
        lastStep = s.step;
        if (ekidenAt[s.step] === undefined) ekidenAt[s.step] = performance.now() - t0;
        console.log(`  ekiden ${Math.round((performance.now() - t0) / 1000)} s: ${s.step}`);
      },
    });
    const ekidenRebuildMs = performance.now() - t0;
    const ekidenPackerMs = built.packer.durationMs;
    const imageBytes = await dirBytes(path.join(root, 'ekiden-image'));
    const ekidenSshWaitMs = (ekidenAt['Connected to SSH'] ?? NaN) - (ekidenAt['Waiting for SSH'] ?? NaN);
    console.log(
      `  ekiden rebuild: ${Math.round(ekidenRebuildMs / 1000)} s (packer ${Math.round(ekidenPackerMs / 1000)} s of which waiting for the guest's SSH ${Math.round(ekidenSshWaitMs / 1000)} s,` +
        ` flatten + commit ${Math.round((ekidenRebuildMs - ekidenPackerMs) / 1000)} s), image ${Math.round(imageBytes / 1e6)} MB`,
    );
    await fs.rm(path.join(root, 'ekiden-image'), { recursive: true, force: true });

    // Plain packer, the same template and variables (its own output dir).
    const vars = JSON.parse(await fs.readFile(path.join(ekidenBuildDir, 'packer', 'vars.json'), 'utf8')) as Record<string, unknown>;
    const plainDir = path.join(root, 'plain');
    for (const d of ['tmp', 'packer-cache']) await fs.mkdir(path.join(plainDir, d), { recursive: true, mode: 0o700 });
    const varFile = path.join(plainDir, 'vars.json');
    await fs.writeFile(varFile, `${JSON.stringify({ ...vars, output_dir: path.join(plainDir, 'output') }, null, 2)}\n`, { mode: 0o600 });
    const env: NodeJS.ProcessEnv = { ...process.env, CHECKPOINT_DISABLE: '1', PACKER_CACHE_DIR: path.join(plainDir, 'packer-cache'), TMPDIR: path.join(plainDir, 'tmp') };
    delete env.PACKER_LOG;
    const plainAt: Record<string, number> = {};
    const t1 = performance.now();
    await plainPackerBuild(varFile, template, plainDir, env, timeoutMs, (line) => {
      for (const step of ['Waiting for SSH', 'Connected to SSH']) if (line.includes(step) && plainAt[step] === undefined) plainAt[step] = performance.now() - t1;
    });
    const packerBuildMs = performance.now() - t1;
    const plainSshWaitMs = (plainAt['Connected to SSH'] ?? NaN) - (plainAt['Waiting for SSH'] ?? NaN);
    console.log(`  plain packer build: ${Math.round(packerBuildMs / 1000)} s (waiting for the guest's SSH ${Math.round(plainSshWaitMs / 1000)} s); Ekiden / plain ${(ekidenRebuildMs / packerBuildMs).toFixed(2)}`);

    return {
      ekidenRebuildMs: Math.round(ekidenRebuildMs),
      ekidenPackerMs: Math.round(ekidenPackerMs),
      ekidenOutputMs: Math.round(ekidenRebuildMs - ekidenPackerMs),
      packerBuildMs: Math.round(packerBuildMs),
      ratio: Math.round((ekidenRebuildMs / packerBuildMs) * 100) / 100,
      packerPartRatio: Math.round((ekidenPackerMs / packerBuildMs) * 100) / 100,
      ekidenSshWaitMs: Math.round(ekidenSshWaitMs),
      plainSshWaitMs: Math.round(plainSshWaitMs),
      imageBytes,
      accelerator,
    };
  } finally {
    // Nothing Packer or QEMU started may outlive the bench.
    for (const pid of processesMentioning(root)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone meanwhile
      }
    }
    await fs.rm(root, { recursive: true, force: true });
  }
}
