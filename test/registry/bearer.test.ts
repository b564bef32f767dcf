/**
 * Token (Bearer) auth against a real registry: docker-registry 2.8 with `auth.token`, trusting
 * the certificate a token server in this process signs its ES256 JWTs with (x5c). The client
 * answers the challenge, caches a token per scope, and fetches a fresh one when the registry
 * rejects the one it has.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RegistryClient } from '../../registry/client.js';
import { pullQemuImage, pushQemuImage } from '../../registry/qemu-artifact.js';
import { caughtRegistryError, makeImageDir, registryMissing, startRegistry, type TestRegistry } from '../support/registry.js';

const skip = registryMissing();

const caught = caughtRegistryError;

describe.skipIf(skip)(`Bearer token auth${skip ? ` — skipped: ${skip}` : ''}`, () => {
  let reg: TestRegistry;
  let work: string;
  const clients: RegistryClient[] = [];
  const logs: string[] = [];
  const make = (password: string) => {
    const c = new RegistryClient({ url: reg.url, ca: reg.caPem, username: reg.username, password, credentialSource: 'EKIDEN_REGISTRY_PASSWORD' }, { log: (l) => logs.push(l) });
    clients.push(c);
    return c;
  };

  beforeAll(async () => {
    reg = await startRegistry({ auth: 'token' });
    work = mkdtempSync(join(tmpdir(), 'ekiden-registry-test-'));
  });

  afterAll(async () => {
    for (const c of clients) c.close();
    await reg?.stop();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('pushes and pulls an image with tokens from the realm, one token per scope', async () => {
    const tokens = reg.tokens!;
    const client = make(reg.password);
    const image = makeImageDir(join(work, 'image'), 600 * 1024);
    const pushed = await pushQemuImage(client, 'ekiden/tokens', image, { tag: 'v1', chunkBytes: 256 * 1024 });
    expect(tokens.issued).toEqual(['repository:ekiden/tokens:pull,push']);
    const pulled = await pullQemuImage(client, 'ekiden/tokens', 'v1', join(work, 'pulled'));
    expect(pulled.digest).toBe(pushed.digest);
    expect(tokens.issued).toEqual(['repository:ekiden/tokens:pull,push', 'repository:ekiden/tokens:pull']);
    expect(await client.listTags('ekiden/tokens')).toEqual(['v1']);
    expect(tokens.issued).toHaveLength(2); // cached
  });

  it('fetches a new token when the registry rejects the cached one', async () => {
    const tokens = reg.tokens!;
    const client = make(reg.password);
    expect(await client.manifestExists('ekiden/tokens', 'v1')).toMatch(/^sha256:/);
    const before = tokens.issued.length;
    // The next token is expired on arrival: the registry answers 401 to it, the client
    // fetches another one and the call succeeds.
    tokens.expireNext = 1;
    expect(await client.manifestExists('ekiden/other', 'v1')).toBeUndefined();
    expect(tokens.issued.length).toBe(before + 2);
    expect(tokens.expireNext).toBe(0);
    // Every token rejected: unauthorized, not an endless loop.
    tokens.expireNext = 5;
    const err = await caught(client.listTags('ekiden/third'));
    expect(err.code).toBe('unauthorized');
    expect(err.retryable).toBe(false);
    tokens.expireNext = 0;
  });

  it('a wrong password is refused by the token server: unauthorized, setting named, password absent', async () => {
    const wrong = `wrong-${randomBytes(9).toString('hex')}`;
    const err = await caught(make(wrong).listTags('ekiden/tokens'));
    expect(err.code).toBe('unauthorized');
    expect(err.retryable).toBe(false);
    expect(err.message).toContain('EKIDEN_REGISTRY_PASSWORD');
    expect(err.message).not.toContain(wrong);
    for (const line of [...logs, err.message]) expect(line).not.toContain(reg.password);
  });
});
