/**
 * The registry client against a real registry (docker-registry 2.8, TLS with a CA made for the
 * run, htpasswd bcrypt auth): blobs in PATCH chunks, resumed pulls, manifests and tags, and
 * what the caller is told when the password, the CA or the digest is wrong — never the password.
 */
import { randomBytes, createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RegistryClient, OCI_MANIFEST, type RegistryEndpoint } from '../../registry/client.js';
import { caughtRegistryError, makeCa, processesWithArgv, registryMissing, spawned, startRegistry, type TestRegistry } from '../support/registry.js';

const skip = registryMissing();
const KiB = 1024;
const LABEL = 'registry.passwordEnv EKIDEN_REGISTRY_PASSWORD';

const caught = caughtRegistryError;

const digest = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

describe.skipIf(skip)(`registry client${skip ? ` — skipped: ${skip}` : ''}`, () => {
  let reg: TestRegistry;
  let work: string;
  let endpoint: RegistryEndpoint;
  let client: RegistryClient;
  const logs: string[] = [];
  const messages: string[] = [];
  const clients: RegistryClient[] = [];
  const make = (e: RegistryEndpoint) => {
    const c = new RegistryClient(e, { log: (l) => logs.push(l) });
    clients.push(c);
    return c;
  };

  beforeAll(async () => {
    reg = await startRegistry();
    work = mkdtempSync(join(tmpdir(), 'ekiden-registry-test-'));
    endpoint = { url: reg.url, caFile: reg.caFile, username: reg.username, password: reg.password, credentialSource: LABEL };
    client = make(endpoint);
  });

  afterAll(async () => {
    for (const c of clients) c.close();
    await reg?.stop();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('uploads a file range in PATCH chunks, skips it the second time, and pulls it back verified', async () => {
    const file = join(work, 'blob.bin');
    const bytes = randomBytes(700 * KiB + 5);
    writeFileSync(file, Buffer.concat([randomBytes(1000), bytes, randomBytes(333)]));
    const sent: number[] = [];
    const first = await client.pushBlob('ekiden/blobs', { file, offset: 1000, length: bytes.length }, { chunkBytes: 256 * KiB, onProgress: (p) => sent.push(p.transferred) });
    expect(first).toEqual({ digest: digest(bytes), size: bytes.length, uploaded: bytes.length, skipped: false });
    expect(Math.max(...sent)).toBe(bytes.length);
    expect(await client.blobExists('ekiden/blobs', first.digest)).toBe(true);
    expect(await client.blobExists('ekiden/blobs', digest(randomBytes(8)))).toBe(false);

    const again = await client.pushBlob('ekiden/blobs', bytes);
    expect(again).toMatchObject({ digest: first.digest, uploaded: 0, skipped: true });

    const dest = join(work, 'blob.out');
    const got = await client.pullBlob('ekiden/blobs', first.digest, dest, { size: bytes.length });
    expect(got).toMatchObject({ digest: first.digest, size: bytes.length, downloaded: bytes.length, resumedFrom: 0 });
    expect(readFileSync(dest).equals(bytes)).toBe(true);
    expect(existsSync(`${dest}.partial`)).toBe(false);
  });

  it('resumes a cancelled blob pull with Range, re-hashing what it kept', async () => {
    const bytes = randomBytes(2 * 1024 * KiB);
    const { digest: d } = await client.pushBlob('ekiden/blobs', bytes);
    const dest = join(work, 'resumed.bin');
    const ac = new AbortController();
    const err = await caught(
      client.pullBlob('ekiden/blobs', d, dest, {
        size: bytes.length,
        signal: ac.signal,
        onProgress: (p) => {
          if (p.transferred > 512 * KiB) ac.abort();
        },
      }),
    );
    messages.push(err.message);
    expect(err.code).toBe('aborted');
    expect(existsSync(dest)).toBe(false);
    const kept = statSync(`${dest}.partial`).size;
    expect(kept).toBeGreaterThan(0);
    expect(kept).toBeLessThan(bytes.length);

    const got = await client.pullBlob('ekiden/blobs', d, dest, { size: bytes.length });
    expect(got.resumedFrom).toBe(kept);
    expect(got.downloaded).toBe(bytes.length - kept);
    expect(readFileSync(dest).equals(bytes)).toBe(true);

    // A kept prefix that is not the blob's is found out by the re-hash: mismatch, nothing kept.
    const other = join(work, 'bad-prefix.bin');
    writeFileSync(`${other}.partial`, randomBytes(1000));
    const bad = await caught(client.pullBlob('ekiden/blobs', d, other, { size: bytes.length }));
    messages.push(bad.message);
    expect(bad.code).toBe('digest-mismatch');
    expect(existsSync(other) || existsSync(`${other}.partial`)).toBe(false);
  });

  it('stores, finds, lists and deletes manifests, checking digests', async () => {
    const config = Buffer.from('{}');
    await client.pushBlob('ekiden/manifests', config);
    const layer = randomBytes(1000);
    const l = await client.pushBlob('ekiden/manifests', layer);
    const manifest = Buffer.from(JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      artifactType: 'application/vnd.ekiden.test.v1',
      config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: digest(config), size: 2 },
      layers: [{ mediaType: 'application/vnd.ekiden.test.layer.v1', digest: l.digest, size: layer.length }],
    }));
    const d = await client.putManifest('ekiden/manifests', 'one', manifest, OCI_MANIFEST);
    expect(d).toBe(digest(manifest));
    await client.putManifest('ekiden/manifests', 'two', manifest, OCI_MANIFEST);
    expect((await client.listTags('ekiden/manifests')).sort()).toEqual(['one', 'two']);
    const got = await client.getManifest('ekiden/manifests', d, [OCI_MANIFEST]);
    expect(got.bytes.equals(manifest)).toBe(true);
    expect(got.mediaType).toBe(OCI_MANIFEST);
    expect(await client.manifestExists('ekiden/manifests', 'one')).toBe(d);
    await client.deleteManifest('ekiden/manifests', d);
    expect(await client.manifestExists('ekiden/manifests', 'one')).toBeUndefined();
    const gone = await caught(client.getManifest('ekiden/manifests', d));
    messages.push(gone.message);
    expect(gone.code).toBe('not-found');
    expect(gone.registryCodes).toContain('MANIFEST_UNKNOWN');
    const wrongRef = await caught(client.putManifest('ekiden/manifests', digest(Buffer.from('x')), manifest, OCI_MANIFEST));
    expect(wrongRef.code).toBe('invalid');
  });

  it('a wrong password is unauthorized, not retryable, names the setting and not the password', async () => {
    const wrong = `wrong-${randomBytes(9).toString('hex')}`;
    const c = make({ ...endpoint, password: wrong });
    const err = await caught(c.blobExists('ekiden/blobs', digest(Buffer.from('a'))));
    messages.push(err.message);
    expect(err.code).toBe('unauthorized');
    expect(err.retryable).toBe(false);
    expect(err.message).toContain(LABEL);
    expect(err.message).not.toContain(wrong);
    expect(err.message).not.toContain(reg.password);
    expect(JSON.stringify(err)).not.toContain(wrong);

    const none = make({ url: reg.url, caFile: reg.caFile, credentialSource: LABEL });
    const e2 = await caught(none.listTags('ekiden/blobs'));
    messages.push(e2.message);
    expect(e2.code).toBe('unauthorized');
    expect(e2.message).toContain(`set ${LABEL}`);
  });

  it('a registry certificate from another CA, or no CA at all, is a TLS error', async () => {
    const caDir = mkdtempSync(join(tmpdir(), 'ekiden-registry-ca-'));
    try {
      const otherCa = await makeCa(caDir, 'other-ca');
      const e1 = await caught(make({ ...endpoint, caFile: otherCa }).listTags('ekiden/blobs'));
      messages.push(e1.message);
      expect(e1.code).toBe('tls');
      expect(e1.retryable).toBe(false);
      expect(e1.message).toMatch(/TLS verification of 127\.0\.0\.1:\d+ failed/);
      const e2 = await caught(make({ ...endpoint, caFile: undefined }).listTags('ekiden/blobs'));
      messages.push(e2.message);
      expect(e2.code).toBe('tls');
    } finally {
      rmSync(caDir, { recursive: true, force: true });
    }
  });

  it('plain http needs insecure; a server that is not listening is unavailable and retryable', async () => {
    expect(() => new RegistryClient({ url: 'http://127.0.0.1:1' })).toThrow(/insecure/);
    const c = make({ url: 'http://127.0.0.1:1', insecure: true });
    const err = await caught(c.blobExists('ekiden/blobs', digest(Buffer.from('a'))));
    messages.push(err.message);
    expect(err.code).toBe('unavailable');
    expect(err.retryable).toBe(true);
  });

  it('the password is on no command line and in no message or log line', async () => {
    // A pull in flight while the process table is read: the registry and every helper this
    // suite started are alive or recorded.
    const bytes = randomBytes(256 * KiB);
    const { digest: d } = await client.pushBlob('ekiden/blobs', bytes);
    const pull = client.pullBlob('ekiden/blobs', d, join(work, 'scan.bin'));
    const b64 = Buffer.from(`${reg.username}:${reg.password}`).toString('base64');
    expect(processesWithArgv(reg.password)).toEqual([]);
    expect(processesWithArgv(b64)).toEqual([]);
    await pull;
    expect(processesWithArgv(`serve ${reg.dir}`).length).toBe(1); // the scan does see the registry
    expect(spawned.length).toBeGreaterThan(3);
    for (const argv of spawned) expect(argv.join(' ')).not.toContain(reg.password);
    expect(logs.length).toBeGreaterThan(0);
    expect(messages.length).toBeGreaterThan(5);
    for (const line of [...logs, ...messages]) {
      expect(line).not.toContain(reg.password);
      expect(line).not.toContain(b64);
    }
  });
});
