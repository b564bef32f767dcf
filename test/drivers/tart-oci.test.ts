/**
 * The tart TEST DOUBLE's `push` / `pull` / `clone` against a REAL registry (Debian's
 * docker-registry with TLS and htpasswd, test/support/registry.ts), through a recording HTTPS
 * proxy in this process (same certificate) so the requests Tart's protocol prescribes can be
 * checked on the wire. What lands in the registry is read back with Ekiden's RegistryClient and
 * checked field by field against Tart's format (Sources/tart/OCI/Manifest.swift,
 * VMDirectory+OCI.swift, OCI/Layerizer/DiskV2.swift, OCI/Registry.swift).
 */
import { execa } from 'execa';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, lstatSync, readFileSync, readlinkSync, readdirSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OCI_MANIFEST, RegistryClient } from '../../registry/client.js';
import { unframe } from '../doubles/tart/apple-lz4.js';
import { registryMissing, startRegistry, type TestRegistry } from '../support/registry.js';

const DOUBLE = fileURLToPath(new URL('../doubles/tart/tart', import.meta.url));
const CHUNK = 1024 * 1024;
const DISK_BYTES = 3 * CHUNK + 12_345; // four disk layers, the last one short
const REPO = 'ekiden/tart-vm';
const missing = registryMissing();

interface Seen {
  method: string;
  path: string;
  query: string;
  status: number;
  headers: Record<string, string | string[] | undefined>;
}

let reg: TestRegistry;
let proxy: https.Server;
let host: string;
let dir: string;
let client: RegistryClient;
const seen: Seen[] = [];
/** Cut the next GET of this blob after this many body bytes (a dropped connection). */
let cut: { digest: string; after: number } | undefined;

const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

async function startProxy(): Promise<void> {
  const ca = reg.caPem;
  proxy = https.createServer({ cert: readFileSync(join(reg.dir, 'server.pem')), key: readFileSync(join(reg.dir, 'server.key')) }, (req, res) => {
    const url = new URL(req.url ?? '/', reg.url);
    const up = https.request(url, { method: req.method, headers: req.headers, ca, agent: false }, (upRes) => {
      seen.push({ method: req.method ?? '', path: url.pathname, query: url.search, status: upRes.statusCode ?? 0, headers: req.headers });
      res.writeHead(upRes.statusCode ?? 502, upRes.headers);
      const c = cut;
      if (c && req.method === 'GET' && url.pathname.endsWith(`/blobs/${c.digest}`) && !req.headers.range) {
        cut = undefined;
        let sent = 0;
        upRes.on('data', (d: Buffer) => {
          if (sent >= c.after) return;
          const piece = d.subarray(0, c.after - sent);
          sent += piece.length;
          if (sent >= c.after) {
            res.write(piece, () => res.socket?.destroy());
            upRes.destroy();
          } else res.write(piece);
        });
        return;
      }
      upRes.pipe(res);
    });
    up.on('error', () => res.destroy());
    req.pipe(up);
  });
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
  host = `127.0.0.1:${(proxy.address() as AddressInfo).port}`;
}

interface Run {
  exitCode: number;
  stdout: string;
  stderr: string;
  argv: string[];
}

async function tart(home: string, args: string[], env: Record<string, string | undefined> = {}): Promise<Run> {
  const r = await execa(DOUBLE, args, {
    reject: false,
    extendEnv: false,
    env: {
      PATH: process.env.PATH,
      HOME: home,
      TART_HOME: home,
      TART_DOUBLE_CA_FILE: reg.caFile,
      TART_DOUBLE_CHUNK_BYTES: String(CHUNK),
      TART_REGISTRY_USERNAME: reg.username,
      TART_REGISTRY_PASSWORD: reg.password,
      ...env,
    },
  });
  return { exitCode: r.exitCode ?? -1, stdout: String(r.stdout), stderr: String(r.stderr), argv: [DOUBLE, ...args] };
}

async function home(): Promise<string> {
  const h = join(dir, `home-${randomBytes(4).toString('hex')}`);
  await mkdir(h, { recursive: true });
  return h;
}

const localConfig = {
  version: 1,
  os: 'darwin',
  arch: 'arm64',
  cpuCountMin: 2,
  cpuCount: 4,
  memorySizeMin: 4 * 1024 ** 3,
  memorySize: 8 * 1024 ** 3,
  macAddress: '7a:12:34:56:78:9a',
  display: { width: 1024, height: 768 },
};
let srcHome: string;
let disk: Buffer;
let nvram: Buffer;

async function blob(digest: string): Promise<Buffer> {
  const s = await client.openBlob(REPO, digest);
  const parts: Buffer[] = [];
  for await (const d of s.stream) parts.push(d as Buffer);
  return Buffer.concat(parts);
}

interface Layer {
  mediaType: string;
  size: number;
  digest: string;
  annotations?: Record<string, string>;
}
interface Manifest {
  schemaVersion: number;
  mediaType: string;
  config: { mediaType: string; size: number; digest: string };
  layers: Layer[];
  annotations: Record<string, string>;
}

async function manifest(ref: string): Promise<{ m: Manifest; bytes: Buffer; digest: string }> {
  const got = await client.getManifest(REPO, ref, [OCI_MANIFEST]);
  return { m: JSON.parse(got.bytes.toString()) as Manifest, bytes: got.bytes, digest: got.digest };
}

function cacheDir(h: string): string {
  return join(h, 'cache', 'OCIs', host.replace(':', '%3A'), 'ekiden', 'tart-vm');
}

describe.skipIf(Boolean(missing))(`tart double: push/pull against a real registry${missing ? ` (skipped: ${missing})` : ''}`, () => {
  let pushed: { m: Manifest; bytes: Buffer; digest: string };
  let pushStarted: number;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ekiden-tart-oci-'));
    reg = await startRegistry();
    await startProxy();
    client = new RegistryClient({ url: reg.url, caFile: reg.caFile, username: reg.username, password: reg.password });
    srcHome = await home();
    const vm = join(srcHome, 'vms', 'src');
    await mkdir(vm, { recursive: true });
    disk = randomBytes(DISK_BYTES);
    disk.fill(0, CHUNK, CHUNK + 300_000); // a zero run, as in real disks
    nvram = randomBytes(4096 + 17);
    await writeFile(join(vm, 'config.json'), JSON.stringify(localConfig, null, 2));
    await writeFile(join(vm, 'disk.img'), disk);
    await writeFile(join(vm, 'nvram.bin'), nvram);
    seen.length = 0;
    pushStarted = Math.floor(Date.now() / 1000) * 1000;
    const r = await tart(srcHome, ['push', 'src', `${host}/${REPO}:v1`, `${host}/${REPO}:latest`, '--concurrency', '2']);
    expect(r.stderr).toBe('');
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toContain(`pushing src to ${host}/${REPO}{:v1,:latest}...`);
    expect(r.stdout).toContain('pushing manifest for latest...');
    pushed = await manifest('v1');
  }, 60_000);

  afterAll(async () => {
    client?.close();
    await new Promise<void>((resolve) => (proxy ? proxy.close(() => resolve()) : resolve()));
    proxy?.closeAllConnections();
    await reg?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("stores Tart's manifest: media types, annotations, Swift's JSON encoding", async () => {
    const { m, bytes } = pushed;
    expect((await manifest('latest')).digest).toBe(pushed.digest);
    // Config.jsonEncoder(): sorted keys, compact, "/" escaped
    expect(bytes.toString()).toContain('"mediaType":"application\\/vnd.oci.image.manifest.v1+json"');
    expect(Object.keys(JSON.parse(bytes.toString()) as object)).toEqual(['annotations', 'config', 'layers', 'mediaType', 'schemaVersion']);
    expect(m.schemaVersion).toBe(2);
    expect(m.mediaType).toBe('application/vnd.oci.image.manifest.v1+json');
    expect(Object.keys(m.annotations).sort()).toEqual(['org.cirruslabs.tart.uncompressed-disk-size', 'org.cirruslabs.tart.upload-time']);
    expect(m.annotations['org.cirruslabs.tart.uncompressed-disk-size']).toBe(String(DISK_BYTES));
    const up = m.annotations['org.cirruslabs.tart.upload-time']!;
    expect(up).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    expect(Date.parse(up)).toBeGreaterThanOrEqual(pushStarted);
    expect(Date.parse(up)).toBeLessThanOrEqual(Date.now());
    expect(m.layers.map((l) => l.mediaType)).toEqual([
      'application/vnd.cirruslabs.tart.config.v1',
      ...Array<string>(4).fill('application/vnd.cirruslabs.tart.disk.v2'),
      'application/vnd.cirruslabs.tart.nvram.v1',
    ]);
    // the OCI config stub
    expect(m.config.mediaType).toBe('application/vnd.oci.image.config.v1+json');
    const stub = await blob(m.config.digest);
    expect(sha(stub)).toBe(m.config.digest);
    expect(stub.length).toBe(m.config.size);
    expect(stub.toString()).toBe('{"architecture":"arm64","config":{"Labels":{"org.cirruslabs.tart.disk.format":"raw"}},"os":"darwin"}');
  });

  it('config, disk chunks (Apple LZ4 framing) and NVRAM layers hold the VM', async () => {
    const [cfg, ...rest] = pushed.m.layers;
    const nv = rest.pop()!;
    const cfgBytes = await blob(cfg!.digest);
    expect(sha(cfgBytes)).toBe(cfg!.digest);
    expect(cfgBytes.length).toBe(cfg!.size);
    expect(cfg!.annotations).toEqual({});
    // JSONEncoder().encode(VMConfig): compact, VMConfig's key order, diskFormat always written
    expect(cfgBytes.toString()).toBe(JSON.stringify({ ...localConfig, diskFormat: 'raw' }));
    const nvBytes = await blob(nv.digest);
    expect(nvBytes.equals(nvram)).toBe(true);
    expect(nv.size).toBe(nvram.length);
    expect(sha(nvBytes)).toBe(nv.digest);
    expect(nv.annotations).toEqual({});
    const restored: Buffer[] = [];
    for (const [i, l] of rest.entries()) {
      const b = await blob(l.digest);
      expect(sha(b)).toBe(l.digest);
      expect(b.length).toBe(l.size);
      expect(b.toString('latin1', 0, 4)).toBe('bv4-');
      expect(b.toString('latin1', b.length - 4)).toBe('bv4$');
      const plain = unframe(b);
      const want = disk.subarray(i * CHUNK, Math.min(DISK_BYTES, (i + 1) * CHUNK));
      expect(plain.equals(want)).toBe(true);
      expect(l.annotations).toEqual({ 'org.cirruslabs.tart.uncompressed-size': String(want.length), 'org.cirruslabs.tart.uncompressed-content-digest': sha(want) });
      restored.push(plain);
    }
    expect(Buffer.concat(restored).equals(disk)).toBe(true);
  });

  it('pushed the way Tart does: disk layers HEADed first, every blob POST then one PUT ?digest=, no PATCH', () => {
    // `seen` still holds the first push (beforeAll) — later tests reset it
    const blobs = seen.filter((s) => s.path.includes('/blobs/'));
    expect(blobs.some((s) => s.method === 'PATCH')).toBe(false);
    const puts = blobs.filter((s) => s.method === 'PUT');
    const posts = blobs.filter((s) => s.method === 'POST' && s.status === 202);
    expect(puts).toHaveLength(7); // config, 4 disk layers, NVRAM, OCI config stub
    expect(posts).toHaveLength(7);
    for (const p of puts) expect(p.status).toBe(201);
    const putDigests = puts.map((p) => new URLSearchParams(p.query).get('digest'));
    const all = [pushed.m.config.digest, ...pushed.m.layers.map((l) => l.digest)];
    expect(new Set(putDigests)).toEqual(new Set(all));
    for (const l of pushed.m.layers.filter((x) => x.mediaType.endsWith('disk.v2'))) {
      const head = seen.findIndex((s) => s.method === 'HEAD' && s.path.endsWith(`/blobs/${l.digest}`));
      const put = seen.findIndex((s) => s.method === 'PUT' && s.query.includes(encodeURIComponent(l.digest)));
      expect(head).toBeGreaterThanOrEqual(0);
      expect(seen[head]!.status).toBe(404);
      expect(put).toBeGreaterThan(head);
    }
    expect(seen.filter((s) => s.method === 'PUT' && s.path.includes('/manifests/')).map((s) => s.path)).toEqual([`/v2/${REPO}/manifests/v1`, `/v2/${REPO}/manifests/latest`]);
  });

  it('a second push HEADs the disk layers and uploads none of them (config, NVRAM and stub are re-sent, as Tart does)', async () => {
    seen.length = 0;
    const r = await tart(srcHome, ['push', 'src', `${host}/${REPO}:v1`]);
    expect(r.exitCode).toBe(0);
    const diskDigests = pushed.m.layers.filter((l) => l.mediaType.endsWith('disk.v2')).map((l) => l.digest);
    const heads = seen.filter((s) => s.method === 'HEAD');
    expect(heads.map((h) => h.path.split('/').pop()).sort()).toEqual([...diskDigests].sort());
    for (const h of heads) expect(h.status).toBe(200);
    const putDigests = seen.filter((s) => s.method === 'PUT' && s.path.includes('/blobs/')).map((s) => new URLSearchParams(s.query).get('digest'));
    for (const d of diskDigests) expect(putDigests).not.toContain(d);
    expect(putDigests.sort()).toEqual([pushed.m.layers[0]!.digest, pushed.m.layers[5]!.digest, pushed.m.config.digest].sort());
    // the same layers; only the upload time (and so the digest) can differ
    const again = await manifest('v1');
    expect(again.m.layers).toEqual(pushed.m.layers);
    expect(again.m.config).toEqual(pushed.m.config);
  });

  it('pull into a fresh TART_HOME: the cache by digest with the tag as a symlink, the VM files back', async () => {
    seen.length = 0;
    const h = await home();
    const current = await manifest('v1'); // re-pushed by the test above
    const r = await tart(h, ['pull', `${host}/${REPO}:v1`]);
    expect(r.stderr).toBe('');
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toContain(`pulling ${host}/${REPO}:v1...`);
    const manifestGet = seen.find((s) => s.method === 'GET' && s.path.includes('/manifests/') && s.status === 200)!;
    expect(manifestGet.headers.accept).toBe('application/vnd.oci.image.manifest.v1+json');
    const digestDir = join(cacheDir(h), current.digest);
    expect(lstatSync(join(cacheDir(h), 'v1')).isSymbolicLink()).toBe(true);
    expect(readlinkSync(join(cacheDir(h), 'v1'))).toBe(digestDir);
    expect(readFileSync(join(digestDir, 'disk.img')).equals(disk)).toBe(true);
    expect(readFileSync(join(digestDir, 'nvram.bin')).equals(nvram)).toBe(true);
    expect(readFileSync(join(digestDir, 'config.json')).equals(await blob(pushed.m.layers[0]!.digest))).toBe(true);
    expect(JSON.parse(readFileSync(join(digestDir, 'config.json'), 'utf8'))).toEqual({ ...localConfig, diskFormat: 'raw' });
    expect(readFileSync(join(digestDir, 'manifest.json')).equals(current.bytes)).toBe(true);
    expect(readdirSync(join(h, 'tmp'))).toEqual([]);
    const list = await tart(h, ['list', '--source', 'oci', '--format', 'json']);
    expect((JSON.parse(list.stdout) as Array<{ Source: string; Name: string }>).map((e) => [e.Source, e.Name])).toEqual([
      ['OCI', `${host}/${REPO}:v1`],
      ['OCI', `${host}/${REPO}@${current.digest}`],
    ]);
    const again = await tart(h, ['pull', `${host}/${REPO}:v1`]);
    expect(again.exitCode).toBe(0);
    expect(again.stdout).toContain(`${host}/${REPO}@${current.digest} image is already cached and linked!`);
  });

  it('clone of a remote image pulls it first; a connection cut mid-layer resumes with Range', async () => {
    const h = await home();
    seen.length = 0;
    const layer = pushed.m.layers[2]!;
    cut = { digest: layer.digest, after: Math.floor(layer.size / 2) };
    const r = await tart(h, ['clone', `${host}/${REPO}:latest`, 'vm2', '--concurrency', '1']);
    expect(r.stderr).toBe('');
    expect(r.exitCode).toBe(0);
    expect(cut).toBeUndefined();
    expect(r.stdout).toContain('Error pulling disk layer 2: "The network connection was lost.", attempting to re-try...');
    const resumed = seen.filter((s) => s.method === 'GET' && s.path.endsWith(`/blobs/${layer.digest}`) && s.headers.range);
    expect(resumed).toHaveLength(1);
    expect(resumed[0]!.status).toBe(206);
    const from = Number(/^bytes=(\d+)-$/.exec(String(resumed[0]!.headers.range))![1]);
    expect(from).toBeGreaterThan(0);
    expect(from).toBeLessThanOrEqual(Math.floor(layer.size / 2));
    expect(readFileSync(join(h, 'vms', 'vm2', 'disk.img')).equals(disk)).toBe(true);
    expect(readFileSync(join(h, 'vms', 'vm2', 'nvram.bin')).equals(nvram)).toBe(true);
    expect(existsSync(join(cacheDir(h), pushed.digest, 'disk.img'))).toBe(true);
    expect(readlinkSync(join(cacheDir(h), 'latest'))).toBe(join(cacheDir(h), pushed.digest));
  });

  it('wrong or no credentials: Tart\'s 401 error, exit 1, the password nowhere in argv or output', async () => {
    const wrong = `wrong-${randomBytes(8).toString('hex')}`;
    const h = await home();
    const pull = await tart(h, ['pull', `${host}/${REPO}:v1`], { TART_REGISTRY_PASSWORD: wrong });
    expect(pull.exitCode).toBe(1);
    expect(pull.stderr).toMatch(/^Error: UnexpectedHTTPStatusCode\(when: "pulling manifest", code: 401, details: ".*UNAUTHORIZED.*"\)\n?$/s);
    const push = await tart(srcHome, ['push', 'src', `${host}/${REPO}:v2`], { TART_REGISTRY_PASSWORD: wrong });
    expect(push.exitCode).toBe(1);
    expect(push.stderr).toMatch(/^Error: UnexpectedHTTPStatusCode\(when: "pushing blob \(POST\)", code: 401, details: ".*UNAUTHORIZED.*"\)\n?$/s);
    const anonymous = await tart(h, ['pull', `${host}/${REPO}:v1`], { TART_REGISTRY_USERNAME: undefined, TART_REGISTRY_PASSWORD: undefined });
    expect(anonymous.exitCode).toBe(1);
    expect(anonymous.stderr).toContain('code: 401');
    for (const r of [pull, push, anonymous]) {
      for (const secret of [wrong, reg.password]) {
        expect(r.argv.join(' ')).not.toContain(secret);
        expect(r.stdout + r.stderr).not.toContain(secret);
      }
    }
    expect(existsSync(join(cacheDir(h), 'v1'))).toBe(false);
    await expect(client.manifestExists(REPO, 'v2')).resolves.toBeUndefined();
  });

  it("the double's Apple-LZ4 decoder also reads compressed bv41 blocks (what real Tart pushes)", () => {
    const u32 = (n: number) => {
      const b = Buffer.alloc(4);
      b.writeUInt32LE(n);
      return b;
    };
    const seq = Buffer.from([0x35, 0x61, 0x62, 0x63, 0x03, 0x00]); // "abc", then 9 bytes from 3 back
    const back = Buffer.from([0x10, 0x7a, 0x0e, 0x00]); // "z", then 4 bytes from 14 back (the previous blocks)
    const framed = Buffer.concat([Buffer.from('bv41'), u32(12), u32(seq.length), seq, Buffer.from('bv4-'), u32(2), Buffer.from('xy'), Buffer.from('bv41'), u32(5), u32(back.length), back, Buffer.from('bv4$')]);
    expect(unframe(framed).toString()).toBe('abcabcabcabcxyzbcab');
    expect(() => unframe(framed.subarray(0, framed.length - 4))).toThrow(/end marker/);
  });

  it('an unknown tag fails like Tart: 404 from "pulling manifest", exit 1', async () => {
    const r = await tart(await home(), ['pull', `${host}/${REPO}:none`]);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(/^Error: UnexpectedHTTPStatusCode\(when: "pulling manifest", code: 404, details: ".*MANIFEST_UNKNOWN.*"\)/);
  });

  it('a manifest without the uncompressed-size (or -digest) annotations fails to pull as in DiskV2.pull', async () => {
    const strip = (key: string) => {
      const m = JSON.parse(pushed.bytes.toString()) as Manifest;
      for (const l of m.layers) if (l.mediaType.endsWith('disk.v2')) delete l.annotations![key];
      return Buffer.from(JSON.stringify(m));
    };
    await client.putManifest(REPO, 'nosize', strip('org.cirruslabs.tart.uncompressed-size'), OCI_MANIFEST);
    await client.putManifest(REPO, 'nodigest', strip('org.cirruslabs.tart.uncompressed-content-digest'), OCI_MANIFEST);
    const h = await home();
    const nosize = await tart(h, ['pull', `${host}/${REPO}:nosize`]);
    expect(nosize.exitCode).toBe(1);
    expect(nosize.stderr).toBe('Error: LayerIsMissingUncompressedSizeAnnotation');
    const nodigest = await tart(h, ['pull', `${host}/${REPO}:nodigest`]);
    expect(nodigest.exitCode).toBe(1);
    expect(nodigest.stderr).toBe('Error: LayerIsMissingUncompressedDigestAnnotation');
    expect(existsSync(join(cacheDir(h), 'nosize'))).toBe(false);
    expect(existsSync(join(cacheDir(h), 'nodigest'))).toBe(false);
  });
});
