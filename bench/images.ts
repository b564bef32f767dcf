/**
 * `npm run bench:images`: push and pull of a multi-GiB QEMU image through a real registry
 * (docker-registry 2.8, TLS, htpasswd), Ekiden's client against `curl` doing the same
 * distribution API calls in the same run.
 *
 * The image: a disk of `--gib` GiB (default 2) of distinct pseudo-random 1 MiB blocks, so no
 * chunk deduplicates against another, cut into `--chunk-mib` MiB chunks (default 256).
 * Baseline push: the same sha256 hash pass (in this process), then per chunk `curl` POST
 * uploads/ and a monolithic PUT `?digest=` streaming the chunk on stdin. Baseline pull: per
 * chunk `curl -o` (no verification). Ekiden push: pushQemuImage (hash pass, HEAD, POST, PATCH
 * in 64 MiB pieces, PUT, manifest); Ekiden pull: pullQemuImage (streamed, every chunk and the
 * whole disk verified). Each pushes into its own repository, so neither finds the other's
 * blobs. curl gets the credentials from a 0600 `-K` config file, never argv.
 * Figures in MB/s (10^6 bytes/s), the ratio Ekiden / curl, and a last line of JSON.
 */
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, createReadStream, createWriteStream, mkdirSync, mkdtempSync, openSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RegistryClient } from '../registry/client.js';
import { pullQemuImage, pushQemuImage } from '../registry/qemu-artifact.js';
import { registryMissing, startRegistry } from '../test/support/registry.js';
import { measureRebuild } from './images/rebuild.js';
import { measureRollout } from './images/rollout.js';

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  const v = i >= 0 ? Number(process.argv[i + 1]) : fallback;
  if (!Number.isFinite(v) || v <= 0) throw new Error(`--${name} must be a positive number`);
  return v;
}

const GIB = arg('gib', 2);
const CHUNK = Math.floor(arg('chunk-mib', 256) * 1024 * 1024);
const MiB = 1024 * 1024;

function curl(args: string[], stdin?: NodeJS.ReadableStream): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn('curl', args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`curl exited ${code}: ${err.trim().slice(0, 300)}`))));
    if (stdin) stdin.pipe(child.stdin);
    else child.stdin.end();
  });
}

/** `curl` with its stdout hashed and written to `file` in this process; resolves with the digest. */
function curlVerified(args: string[], file: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn('curl', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const h = createHash('sha256');
    const out = createWriteStream(file);
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.stdout.on('data', (d: Buffer) => h.update(d));
    child.stdout.pipe(out);
    child.on('error', reject);
    let code: number | null = null;
    let pending = 2;
    const done = () => {
      if (--pending > 0) return;
      if (code === 0) resolve(`sha256:${h.digest('hex')}`);
      else reject(new Error(`curl exited ${code}: ${err.trim().slice(0, 300)}`));
    };
    child.on('close', (c) => {
      code = c;
      done();
    });
    out.on('finish', done);
    out.on('error', reject);
  });
}

function makeDisk(file: string, bytes: number): void {
  const block = randomBytes(MiB);
  const fd = openSync(file, 'w');
  try {
    for (let off = 0, i = 0; off < bytes; off += MiB, i++) {
      block.writeUInt32LE(i, 0); // every block distinct
      block.writeUInt32LE((i * 2654435761) >>> 0, 512);
      writeSync(fd, block, 0, Math.min(MiB, bytes - off), off);
    }
  } finally {
    closeSync(fd);
  }
}

async function hashChunks(file: string, size: number): Promise<string[]> {
  const out: string[] = [];
  for (let off = 0; off < size; off += CHUNK) {
    const h = createHash('sha256');
    for await (const c of createReadStream(file, { start: off, end: Math.min(size, off + CHUNK) - 1, highWaterMark: MiB })) h.update(c as Buffer);
    out.push(`sha256:${h.digest('hex')}`);
  }
  return out;
}

const mbps = (bytes: number, ms: number) => Math.round((bytes / 1e6 / (ms / 1000)) * 10) / 10;

async function main(): Promise<void> {
  const missing = registryMissing();
  if (missing) throw new Error(`bench:images needs ${missing}`);
  const reg = await startRegistry();
  const work = mkdtempSync(join(tmpdir(), 'ekiden-bench-images-'));
  const client = new RegistryClient({ url: reg.url, caFile: reg.caFile, username: reg.username, password: reg.password });
  try {
    const image = join(work, 'image');
    const size = Math.floor(GIB * 1024 * MiB);
    mkdirSync(image);
    makeDisk(join(image, 'disk.qcow2'), size);
    writeFileSync(join(image, 'vmlinuz'), randomBytes(8 * MiB));
    writeFileSync(join(image, 'initrd.img'), randomBytes(16 * MiB));
    writeFileSync(join(image, 'manifest.json'), `${JSON.stringify({ format: 1, name: 'bench', kernel: 'vmlinuz', initrd: 'initrd.img', disk: 'disk.qcow2' })}\n`);
    const disk = join(image, 'disk.qcow2');
    console.log(`image: ${(size / MiB).toFixed(0)} MiB disk in ${Math.ceil(size / CHUNK)} chunks of ${CHUNK / MiB} MiB`);

    const cfg = join(work, 'curl.cfg');
    writeFileSync(cfg, `user = "${reg.username}:${reg.password}"\n`, { mode: 0o600 });
    const base = ['-sS', '--fail', '-K', cfg, '--cacert', reg.caFile];

    // Baseline push: hash pass + curl POST / PUT per chunk.
    let t = performance.now();
    const digests = await hashChunks(disk, size);
    for (let i = 0, off = 0; off < size; i++, off += CHUNK) {
      const loc = (await curl([...base, '-X', 'POST', '-o', '/dev/null', '-w', '%header{location}', `${reg.url}/v2/bench/curl/blobs/uploads/`])).trim();
      const url = new URL(loc, reg.url);
      url.searchParams.set('digest', digests[i]);
      const n = Math.min(CHUNK, size - off);
      await curl([...base, '-X', 'PUT', '-T', '-', '-H', 'Content-Type: application/octet-stream', '-H', `Content-Length: ${n}`, '-o', '/dev/null', url.toString()], createReadStream(disk, { start: off, end: off + n - 1, highWaterMark: MiB }));
    }
    const curlPushMs = performance.now() - t;
    console.log(`curl push:   ${mbps(size, curlPushMs)} MB/s (${Math.round(curlPushMs)} ms)`);

    t = performance.now();
    const pushed = await pushQemuImage(client, 'bench/ekiden', image, { tag: 'v1', chunkBytes: CHUNK });
    const ekidenPushMs = performance.now() - t;
    console.log(`ekiden push: ${mbps(pushed.size, ekidenPushMs)} MB/s (${Math.round(ekidenPushMs)} ms, ${pushed.uploaded} bytes uploaded)`);

    t = performance.now();
    const again = await pushQemuImage(client, 'bench/ekiden', image, { tag: 'v1', chunkBytes: CHUNK });
    const repushMs = performance.now() - t;
    console.log(`ekiden push again: ${Math.round(repushMs)} ms, ${again.uploaded} bytes uploaded`);

    // Baseline pull: curl -o per chunk.
    const curlDir = join(work, 'curl-pull');
    mkdirSync(curlDir);
    t = performance.now();
    for (let i = 0; i < digests.length; i++) {
      const got = await curlVerified([...base, '-L', `${reg.url}/v2/bench/curl/blobs/${digests[i]}`], join(curlDir, `chunk-${i}`));
      if (got !== digests[i]) throw new Error(`curl pull: chunk ${i} hashes to ${got}, not ${digests[i]}`);
    }
    const curlPullMs = performance.now() - t;
    const curlBytes = digests.reduce((n, _d, i) => n + statSync(join(curlDir, `chunk-${i}`)).size, 0);
    if (curlBytes !== size) throw new Error(`curl pulled ${curlBytes} bytes, expected ${size}`);
    rmSync(curlDir, { recursive: true, force: true });
    console.log(`curl pull:   ${mbps(size, curlPullMs)} MB/s (${Math.round(curlPullMs)} ms, every chunk verified)`);

    const dest = join(work, 'ekiden-pull');
    t = performance.now();
    const pulled = await pullQemuImage(client, 'bench/ekiden', 'v1', dest);
    const ekidenPullMs = performance.now() - t;
    console.log(`ekiden pull: ${mbps(pulled.size, ekidenPullMs)} MB/s (${Math.round(ekidenPullMs)} ms, verified)`);

    const result = {
      bench: 'images',
      diskBytes: size,
      chunkBytes: CHUNK,
      curlPushMBps: mbps(size, curlPushMs),
      ekidenPushMBps: mbps(pushed.size, ekidenPushMs),
      pushRatio: Math.round((mbps(pushed.size, ekidenPushMs) / mbps(size, curlPushMs)) * 100) / 100,
      repushMs: Math.round(repushMs),
      repushUploadedBytes: again.uploaded,
      curlPullMBps: mbps(size, curlPullMs),
      ekidenPullMBps: mbps(pulled.size, ekidenPullMs),
      pullRatio: Math.round((mbps(pulled.size, ekidenPullMs) / mbps(size, curlPullMs)) * 100) / 100,
    };
    console.log(`ratio (ekiden / curl): push ${result.pushRatio}, pull ${result.pullRatio}`);
    rmSync(dest, { recursive: true, force: true });
    // Further phases add their figures here.
    const out: Record<string, unknown> = { ...result };
    if (!process.argv.includes('--skip-rollout')) out.rollout = await measureRollout();
    if (!process.argv.includes('--skip-rebuild')) out.rebuild = await measureRebuild();
    console.log(JSON.stringify(out));
  } finally {
    client.close();
    await reg.stop();
    rmSync(work, { recursive: true, force: true });
  }
}

// The rollout phase's Temporal runtime keeps the event loop alive: exit once the figures are out.
main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err instanceof Error ? err.message : err);
    process.exit(1);
  },
);
