/**
 * The QEMU driver's registry images (`HOST[:PORT]/REPO@sha256:…`) against a real registry
 * (docker-registry 2.8 over TLS with htpasswd auth) and a real image cache: pull by digest
 * into the cache (once, also when asked twice at once), clone onto the cached disk (checked
 * with qemu-img; no boot), GC that spares an image while a VM uses it, and the failures a pool
 * can meet: an unpinned ref, a wrong password, a registry that is down or dies mid-pull, a
 * cache too small. Skipped with the reason when docker-registry or qemu-img is missing.
 */
import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { toFailure } from '../../activities/failures.js';
import { FailureType } from '../../core/failures.js';
import { runToken, vmName } from '../../core/names.js';
import { QemuDriver, type QemuOciOptions } from '../../drivers/qemu.js';
import { parseOciImageRef } from '../../drivers/qemu-oci.js';
import { ImageCache, ImageCacheFullError } from '../../host/image-cache.js';
import { RegistryClient, type RegistryEndpoint } from '../../registry/client.js';
import { RegistryError } from '../../registry/errors.js';
import { pushQemuImage } from '../../registry/qemu-artifact.js';
import { makeImageDir, processesWithArgv, registryMissing, startRegistry, type TestRegistry } from '../support/registry.js';
import { driverError } from '../support/rejections.js';

const MiB = 1024 * 1024;
const SETTING = 'registry.passwordEnv EKIDEN_REGISTRY_PASSWORD';

function onPath(bin: string): boolean {
  return (process.env.PATH ?? '').split(delimiter).some((d) => d && existsSync(join(d, bin)));
}

const skip = registryMissing() || (onPath('qemu-img') ? '' : 'qemu-img not installed (apt-get install qemu-utils)');

/** The ApplicationFailure activities/failures.ts makes of an error. */
function failure(err: unknown): ApplicationFailure {
  const f = toFailure(err);
  expect(f).toBeInstanceOf(ApplicationFailure);
  return f as ApplicationFailure;
}

function newVmName(): string {
  return vmName({ pool: 'ocitest', token: runToken(randomUUID()), attempt: 1 });
}

/** The registry's pid, SIGKILLed and reaped by the kernel before this returns (synchronously). */
function killRegistryNow(reg: TestRegistry): void {
  const procs = processesWithArgv(join(reg.dir, 'config.yml')).filter((p) => p.cmdline.includes(' serve '));
  expect(procs).toHaveLength(1);
  const pid = procs[0]!.pid;
  process.kill(pid, 'SIGKILL');
  // Dead once it is a zombie (its sockets closed); it stays one until the test process reaps it.
  const deadline = Date.now() + 10_000;
  for (;;) {
    let state: string | undefined;
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      state = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0];
    } catch {
      return; // reaped already
    }
    if (state === 'Z' || state === 'X') return;
    if (Date.now() > deadline) throw new Error(`registry ${pid} did not die`);
  }
}

describe.skipIf(skip)(`QEMU driver: registry images by digest${skip ? ` — skipped: ${skip}` : ''}`, () => {
  let reg: TestRegistry;
  let work: string;
  let source: string;
  let digest: string;
  let ref: string;
  let n = 0;

  const endpoint = (password = reg.password): RegistryEndpoint => ({ url: reg.url, caFile: reg.caFile, username: reg.username, password, credentialSource: SETTING });

  /** A driver with its own root and cache under the test's ekiden- directory. */
  function setup(opts: { budgetBytes?: number; registry?: RegistryEndpoint | null; oci?: Partial<QemuOciOptions> } = {}) {
    const dir = join(work, `host-${++n}`);
    const logs: Array<{ msg: string; fields?: Record<string, unknown> }> = [];
    const clock = { now: Date.now() };
    const cacheRoot = join(dir, 'image-cache');
    const cache = new ImageCache({
      root: cacheRoot,
      budgetBytes: opts.budgetBytes ?? 1024 * MiB,
      retentionMs: 60_000,
      now: () => clock.now,
      log: (msg, fields) => logs.push({ msg, fields }),
    });
    const registry = opts.registry === null ? undefined : (opts.registry ?? endpoint());
    const driver = new QemuDriver({ root: join(dir, 'vms'), imagesDir: join(dir, 'images'), accel: 'tcg', oci: { cache, ...(registry ? { registry } : {}), ...opts.oci } });
    const fills = () => logs.filter((l) => l.msg === 'image cache: filled').length;
    const leftovers = () => ['tmp', 'trash'].flatMap((sub) => (existsSync(join(cacheRoot, sub)) ? readdirSync(join(cacheRoot, sub)) : []));
    return { driver, cache, cacheRoot, logs, clock, fills, leftovers };
  }

  beforeAll(async () => {
    reg = await startRegistry();
    work = mkdtempSync(join(tmpdir(), 'ekiden-qemu-oci-'));
    source = makeImageDir(join(work, 'source'), 1024);
    // A real qcow2 (qemu-img must accept it as a backing file), 8 MiB of it on disk: 8 chunks.
    rmSync(join(source, 'disk.qcow2'));
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-o', 'preallocation=full', join(source, 'disk.qcow2'), '8M']);
    const client = new RegistryClient(endpoint());
    try {
      digest = (await pushQemuImage(client, 'ekiden/runner', source, { tag: 'v1', chunkBytes: MiB })).digest;
    } finally {
      client.close();
    }
    ref = `${reg.host}/ekiden/runner@${digest}`;
  });

  afterAll(async () => {
    await reg?.stop();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('pulls by digest into the cache once (also when asked twice at once), then finds it there and fetches nothing', async () => {
    const h = setup();
    expect(await h.driver.localImage({ image: ref })).toBeUndefined();

    const [a, b] = await Promise.all([h.driver.pullImage({ image: ref }), h.driver.pullImage({ image: ref })]);
    expect(a).toEqual({ image: ref, digest });
    expect(b).toEqual({ image: ref, digest });
    expect(h.fills()).toBe(1);
    const entry = join(h.cacheRoot, 'sha256', digest.slice('sha256:'.length));
    for (const f of ['manifest.json', 'disk.qcow2', 'vmlinuz', 'initrd.img']) {
      expect(readFileSync(join(entry, f)).equals(readFileSync(join(source, f))), f).toBe(true);
    }
    expect(await h.driver.localImage({ image: ref })).toEqual({ image: ref, digest });

    // A tag next to the digest is informational: the same cache entry.
    const tagged = `${reg.host}/ekiden/runner:v1@${digest}`;
    expect(await h.driver.localImage({ image: tagged })).toEqual({ image: tagged, digest });

    expect(await h.driver.pullImage({ image: ref })).toEqual({ image: ref, digest });
    expect(h.fills()).toBe(1);
    expect(h.leftovers()).toEqual([]);
  });

  it('clones an overlay whose backing file is the cached disk; GC keeps the image while the VM exists', async () => {
    const h = setup();
    await h.driver.pullImage({ image: ref });
    const name = newVmName();
    await h.driver.clone({ image: ref, name, cpu: 1, memoryMb: 512 });
    expect(await h.driver.get({ name })).toEqual({ name, state: 'stopped', image: ref });

    const cachedDisk = join(realpathSync(h.cacheRoot), 'sha256', digest.slice('sha256:'.length), 'disk.qcow2');
    const info = JSON.parse(execFileSync('qemu-img', ['info', '--output=json', '-U', join(h.driver.vmDir(name), 'disk.qcow2')], { encoding: 'utf8' })) as Record<string, unknown>;
    expect(info['format']).toBe('qcow2');
    expect(info['backing-filename']).toBe(cachedDisk);
    expect(info['backing-filename-format']).toBe('qcow2');

    expect(await h.driver.imageDigestsInUse()).toEqual(new Set([digest]));
    h.clock.now += 3_600_000; // past the retention: only "in use" protects it now
    expect((await h.cache.gc({ referenced: new Set(), inUse: await h.driver.imageDigestsInUse() })).deleted).toEqual([]);
    expect(await h.driver.localImage({ image: ref })).toEqual({ image: ref, digest });

    await h.driver.delete({ name });
    expect(await h.driver.imageDigestsInUse()).toEqual(new Set());
    expect((await h.cache.gc({ referenced: new Set(), inUse: await h.driver.imageDigestsInUse() })).deleted).toEqual([digest]);
    expect(await h.driver.localImage({ image: ref })).toBeUndefined();
    const err = await driverError(h.driver.clone({ image: ref, name: newVmName() }));
    expect(err.code).toBe('not-found');
    expect(err.message).toContain('pull it first');
  });

  it('refuses refs that are not pinned by digest, refs of another registry, and registry refs without a cache', async () => {
    const h = setup();
    for (const unpinned of [`${reg.host}/ekiden/runner:v1`, `${reg.host}/ekiden/runner`]) {
      const err = await driverError(h.driver.pullImage({ image: unpinned }));
      expect(err.code).toBe('invalid');
      expect(err.message).toContain('pinned by digest');
      expect(err.message).toContain(`${reg.host}/ekiden/runner@sha256:`);
      expect(failure(err).nonRetryable).toBe(true);
      expect((await driverError(h.driver.localImage({ image: unpinned }))).code).toBe('invalid');
      expect((await driverError(h.driver.clone({ image: unpinned, name: newVmName() }))).code).toBe('invalid');
    }
    expect((await driverError(h.driver.pullImage({ image: 'not a ref' }))).message).toContain('qemu:NAME');
    expect((await driverError(h.driver.pullImage({ image: `ekiden/runner@${digest}` }))).message).toContain('registry host');

    const elsewhere = `registry.example.com:5000/ekiden/runner@${digest}`;
    const other = await driverError(h.driver.pullImage({ image: elsewhere }));
    expect(other.code).toBe('invalid');
    expect(other.message).toContain('registry.example.com:5000');
    expect(other.message).toContain(reg.host);

    const noRegistry = await driverError(setup({ registry: null }).driver.pullImage({ image: ref }));
    expect(noRegistry.code).toBe('invalid');
    expect(noRegistry.message).toContain(`registry: { url: https://${reg.host} }`);

    const plain = new QemuDriver({ root: join(work, 'plain'), imagesDir: join(work, 'plain-images'), accel: 'tcg' });
    const noCache = await driverError(plain.localImage({ image: ref }));
    expect(noCache.code).toBe('invalid');
    expect(noCache.message).toContain('no image cache');

    expect(parseOciImageRef(`[::1]:5000/a/b@${digest}`)).toEqual({ ref: `[::1]:5000/a/b@${digest}`, host: '[::1]:5000', repository: 'a/b', digest });
    expect(h.leftovers()).toEqual([]);
  });

  it('a wrong password is final and names the setting, never the password', async () => {
    const wrong = `wrong-${randomUUID()}`;
    const h = setup({ registry: endpoint(wrong) });
    const err = await driverError(h.driver.pullImage({ image: ref }));
    expect(err.code).toBe('auth');
    expect(err.cause).toBeInstanceOf(RegistryError);
    expect((err.cause as RegistryError).code).toBe('unauthorized');
    expect(err.message).toContain(SETTING);
    expect(err.message).toContain(ref);
    expect(err.message).not.toContain(wrong);
    expect(err.message).not.toContain(reg.password);
    const f = failure(err);
    expect(f.nonRetryable).toBe(true);
    expect(f.type).toBe(FailureType.RegistryAuth);
    expect(f.message).not.toContain(wrong);
    expect(await h.cache.list()).toEqual([]);
    expect(h.leftovers()).toEqual([]);
  });

  it('a registry that is down, or dies mid-pull, is retryable; once it is back the pull succeeds; cached images need no registry', async () => {
    const cached = setup();
    await cached.driver.pullImage({ image: ref });
    const fresh = setup();

    await reg.kill();
    expect(await cached.driver.pullImage({ image: ref })).toEqual({ image: ref, digest });
    const down = await driverError(fresh.driver.pullImage({ image: ref }));
    expect(down.code).toBe('unavailable');
    expect((down.cause as RegistryError).code).toBe('unavailable');
    expect(down.message).toContain(reg.host);
    const f = failure(down);
    expect(f.nonRetryable).toBe(false);
    expect(f.type).toBe(FailureType.RegistryUnavailable);
    expect(await fresh.cache.list()).toEqual([]);
    await reg.restart();
    expect(await fresh.driver.pullImage({ image: ref })).toEqual({ image: ref, digest });
    expect(fresh.fills()).toBe(1);

    // Killed while the disk's chunks stream in: the fill fails whole, nothing is left.
    let killedAt: number | undefined;
    const midway = setup({
      oci: {
        onProgress: (p) => {
          if (killedAt === undefined && p.layer === 'disk.qcow2' && p.bytesDone > 0) {
            killedAt = p.bytesDone;
            killRegistryNow(reg);
          }
        },
      },
    });
    const cut = await driverError(midway.driver.pullImage({ image: ref }));
    expect(killedAt).toBeGreaterThan(0);
    expect(cut.code).toBe('unavailable');
    expect(failure(cut).nonRetryable).toBe(false);
    expect(failure(cut).type).toBe(FailureType.RegistryUnavailable);
    expect(await midway.cache.list()).toEqual([]);
    expect(midway.leftovers()).toEqual([]);
    expect(await midway.driver.localImage({ image: ref })).toBeUndefined();
    await reg.restart();
    expect(await midway.driver.pullImage({ image: ref })).toEqual({ image: ref, digest });
    expect(await midway.driver.localImage({ image: ref })).toEqual({ image: ref, digest });
  });

  it('an image larger than the cache budget is refused for good with the cache\'s reason, and nothing is left in the cache', async () => {
    const h = setup({ budgetBytes: 2 * MiB });
    const err = await driverError(h.driver.pullImage({ image: ref }));
    expect(err.code).toBe('cache-full');
    expect(err.cause).toBeInstanceOf(ImageCacheFullError);
    expect(err.message).toContain((err.cause as ImageCacheFullError).reason);
    expect(err.message).toContain(ref);
    expect(failure(err).nonRetryable).toBe(true);
    expect(failure(err).type).toBe(FailureType.ImageCacheFull);
    expect(await h.cache.list()).toEqual([]);
    expect(h.leftovers()).toEqual([]);
    expect(readdirSync(join(h.cacheRoot, 'sha256'))).toEqual([]);
    expect(await h.driver.localImage({ image: ref })).toBeUndefined();
  });
});
