/**
 * QEMU images as OCI artifacts against a real registry (docker-registry 2.8 over TLS with
 * htpasswd auth): byte-identical round trip, deduplicated second push, resume after a
 * cancelled pull, a corrupted chunk, and a registry that dies and comes back.
 */
import { mkdtempSync, readFileSync, readdirSync, existsSync, statSync, openSync, writeSync, closeSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadQemuImage } from '../../drivers/qemu-image.js';
import { RegistryClient } from '../../registry/client.js';
import { parseQemuManifest, pullQemuImage, pushQemuImage, QEMU_ARTIFACT_TYPE, QEMU_ANNOTATIONS, type ImageProgress } from '../../registry/qemu-artifact.js';
import { caughtRegistryError, makeImageDir, registryMissing, startRegistry, type TestRegistry } from '../support/registry.js';

const skip = registryMissing();
const MiB = 1024 * 1024;
const CHUNK = 1 * MiB;
const DISK = 3 * MiB + 12_345; // four chunks, the last one short

const caught = caughtRegistryError;

function sameFiles(a: string, b: string): void {
  for (const f of ['manifest.json', 'disk.qcow2', 'vmlinuz', 'initrd.img']) {
    expect(readFileSync(join(b, f)).equals(readFileSync(join(a, f))), f).toBe(true);
  }
}

describe.skipIf(skip)(`QEMU images as OCI artifacts${skip ? ` — skipped: ${skip}` : ''}`, () => {
  let reg: TestRegistry;
  let work: string;
  let image: string;
  let client: RegistryClient;
  const logs: string[] = [];
  const messages: string[] = [];

  beforeAll(async () => {
    reg = await startRegistry();
    work = mkdtempSync(join(tmpdir(), 'ekiden-registry-test-'));
    image = makeImageDir(join(work, 'image'), DISK);
    client = new RegistryClient({ url: reg.url, caFile: reg.caFile, username: reg.username, password: reg.password }, { log: (l) => logs.push(l) });
  });

  afterAll(async () => {
    client?.close();
    await reg?.stop();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('pushes an image in chunks and pulls it back byte-identical; a second push uploads nothing and gives the same digest', async () => {
    const progress: ImageProgress[] = [];
    const first = await pushQemuImage(client, 'ekiden/runner', image, {
      tag: 'v1',
      chunkBytes: CHUNK,
      uploadChunkBytes: 300 * 1024,
      annotations: { [QEMU_ANNOTATIONS.runnerVersion]: '2.336.0', [QEMU_ANNOTATIONS.templateHash]: 'abc123' },
      onProgress: (p) => progress.push(p),
    });
    const total = DISK + statSync(join(image, 'vmlinuz')).size + statSync(join(image, 'initrd.img')).size + statSync(join(image, 'manifest.json')).size;
    expect(first.size).toBe(total);
    expect(first.uploaded).toBe(total);
    expect(first.layers.filter((l) => l.mediaType.includes('disk'))).toHaveLength(4);
    expect(progress.filter((p) => p.phase === 'push').at(-1)?.transferred).toBe(total);
    expect(await client.manifestExists('ekiden/runner', 'v1')).toBe(first.digest);
    expect(await client.listTags('ekiden/runner')).toEqual(['v1']);

    const got = await client.getManifest('ekiden/runner', first.digest);
    const art = parseQemuManifest(got.bytes);
    expect(JSON.parse(got.bytes.toString()).artifactType).toBe(QEMU_ARTIFACT_TYPE);
    expect(art.annotations[QEMU_ANNOTATIONS.runnerVersion]).toBe('2.336.0');
    expect(art.disk.size).toBe(DISK);
    expect(art.disk.chunks.map((c) => c.size)).toEqual([CHUNK, CHUNK, CHUNK, DISK - 3 * CHUNK]);

    const again: ImageProgress[] = [];
    const second = await pushQemuImage(client, 'ekiden/runner', image, {
      tag: 'v1',
      chunkBytes: CHUNK,
      annotations: { [QEMU_ANNOTATIONS.templateHash]: 'abc123', [QEMU_ANNOTATIONS.runnerVersion]: '2.336.0' },
      onProgress: (p) => again.push(p),
    });
    expect(second.uploaded).toBe(0);
    expect(Math.max(...again.map((p) => p.transferred))).toBe(0);
    expect(second.digest).toBe(first.digest);

    const dest = join(work, 'pulled');
    const pulled = await pullQemuImage(client, 'ekiden/runner', 'v1', dest);
    expect(pulled.digest).toBe(first.digest);
    expect(pulled.downloaded).toBe(total);
    sameFiles(image, dest);
    expect(readdirSync(dest).sort()).toEqual(['disk.qcow2', 'initrd.img', 'manifest.json', 'vmlinuz']);
    const loaded = await loadQemuImage(dest, `qemu:${dest}`);
    expect(loaded?.disk).toBe(join(dest, 'disk.qcow2'));

    // Pulling into the same directory again verifies and fetches nothing.
    expect((await pullQemuImage(client, 'ekiden/runner', first.digest, dest)).downloaded).toBe(0);
  });

  it('resumes a cancelled pull: complete chunks are kept, the cut one continues by Range', async () => {
    await pushQemuImage(client, 'ekiden/resume', image, { tag: 'v1', chunkBytes: CHUNK });
    const dest = join(work, 'resume');
    const ac = new AbortController();
    const stopAt = 1.5 * MiB;
    let seen = 0;
    const err = await caught(
      pullQemuImage(client, 'ekiden/resume', 'v1', dest, {
        signal: ac.signal,
        onProgress: (p) => {
          seen = p.transferred;
          if (p.layer === 'disk.qcow2' && p.transferred > stopAt) ac.abort();
        },
      }),
    );
    messages.push(err.message);
    expect(err.code).toBe('aborted');
    expect(existsSync(join(dest, 'disk.qcow2'))).toBe(false);
    expect(existsSync(join(dest, 'manifest.json'))).toBe(false);
    const kept = statSync(join(dest, 'disk.qcow2.partial')).size;
    expect(kept).toBeGreaterThan(CHUNK); // past the first chunk
    expect(kept).toBeLessThan(DISK);
    expect(seen).toBeGreaterThan(stopAt);

    const total = DISK + statSync(join(image, 'vmlinuz')).size + statSync(join(image, 'initrd.img')).size + statSync(join(image, 'manifest.json')).size;
    const resumed = await pullQemuImage(client, 'ekiden/resume', 'v1', dest);
    expect(resumed.downloaded).toBe(DISK - kept);
    expect(resumed.downloaded).toBeLessThan(total);
    sameFiles(image, dest);
    expect(existsSync(join(dest, 'disk.qcow2.partial'))).toBe(false);
  });

  it('refuses a corrupted chunk: digest-mismatch, no disk, only the verified chunks kept', async () => {
    const other = makeImageDir(join(work, 'other'), DISK, 'other');
    const pushed = await pushQemuImage(client, 'ekiden/corrupt', other, { tag: 'v1', chunkBytes: CHUNK });
    const chunk1 = pushed.layers.find((l) => l.annotations?.[QEMU_ANNOTATIONS.chunkIndex] === '1')!;
    const file = reg.blobFile(chunk1.digest);
    const fd = openSync(file, 'r+');
    writeSync(fd, Buffer.from('not the bytes you were promised'), 0, undefined, 4096);
    closeSync(fd);

    const dest = join(work, 'corrupt');
    const err = await caught(pullQemuImage(client, 'ekiden/corrupt', 'v1', dest));
    messages.push(err.message);
    expect(err.code).toBe('digest-mismatch');
    expect(err.retryable).toBe(false);
    expect(err.message).toContain(chunk1.digest);
    expect(existsSync(join(dest, 'disk.qcow2'))).toBe(false);
    expect(existsSync(join(dest, 'manifest.json'))).toBe(false);
    expect(statSync(join(dest, 'disk.qcow2.partial')).size).toBe(CHUNK);

    // The blob alone: nothing at all is left at the destination.
    const blobDest = join(work, 'chunk1');
    const e2 = await caught(client.pullBlob('ekiden/corrupt', chunk1.digest, blobDest, { size: chunk1.size }));
    messages.push(e2.message);
    expect(e2.code).toBe('digest-mismatch');
    expect(existsSync(blobDest)).toBe(false);
    expect(existsSync(`${blobDest}.partial`)).toBe(false);
  });

  it('refuses manifests of another artifact type and over the size limit', async () => {
    const config = Buffer.from('{}');
    await client.pushBlob('ekiden/foreign', config);
    const foreign = Buffer.from(JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      artifactType: 'application/vnd.example.other.v1',
      config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: 'sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a', size: 2 },
      layers: [],
    }));
    await client.putManifest('ekiden/foreign', 'v1', foreign, 'application/vnd.oci.image.manifest.v1+json');
    const dest = join(work, 'foreign');
    const err = await caught(pullQemuImage(client, 'ekiden/foreign', 'v1', dest));
    messages.push(err.message);
    expect(err.code).toBe('unsupported');
    expect(err.message).toContain('application/vnd.example.other.v1');
    expect(existsSync(dest)).toBe(false);
    const big = await caught(pullQemuImage(client, 'ekiden/runner', 'v1', join(work, 'big'), { maxManifestBytes: 100 }));
    expect(big.code).toBe('too-large');
    const huge = await caught(pullQemuImage(client, 'ekiden/runner', 'v1', join(work, 'huge'), { maxBytes: 1000 }));
    expect(huge.code).toBe('too-large');
    expect(existsSync(join(work, 'huge'))).toBe(false);
  });

  it('a registry that is down is unavailable (retryable); after it restarts the same pull succeeds', async () => {
    const dest = join(work, 'down');
    await reg.kill();
    const err = await caught(pullQemuImage(client, 'ekiden/runner', 'v1', dest));
    messages.push(err.message);
    expect(err.code).toBe('unavailable');
    expect(err.retryable).toBe(true);
    expect(err.message).toContain(reg.host);
    await reg.restart();
    await pullQemuImage(client, 'ekiden/runner', 'v1', dest);
    sameFiles(image, dest);
  });

  it('no password in any log line or error message of the client', () => {
    expect(logs.length).toBeGreaterThan(0);
    const b64 = Buffer.from(`${reg.username}:${reg.password}`).toString('base64');
    for (const line of [...logs, ...messages]) {
      expect(line).not.toContain(reg.password);
      expect(line).not.toContain(b64);
    }
  });
});


