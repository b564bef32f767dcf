import { existsSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FakeDriver } from '../../drivers/fake.js';
import type { SshEndpoint } from '../../drivers/types.js';
import { hostKeyFingerprint, sameFingerprint, SshError, sshExec, waitForSsh } from '../../ssh/client.js';
import { generateSshKeyPair } from '../../ssh/keys.js';
import { createFakeHost, IMAGE, waitFor, type FakeHost } from '../drivers/fake-fixture.js';

async function sshError(p: Promise<unknown>): Promise<SshError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(SshError);
    return err as SshError;
  }
  throw new Error('expected an SshError');
}

let h: FakeHost;
let vm: string;
let endpoint: SshEndpoint;
beforeAll(async () => {
  h = await createFakeHost();
  vm = await h.startVm();
  endpoint = await h.driver.sshEndpoint({ name: vm, timeoutMs: 10_000 });
});
afterAll(async () => {
  expect(await h.cleanup()).toEqual([]);
});

describe('fingerprints', () => {
  it('are OpenSSH style and compare with or without prefix and padding', () => {
    const fp = hostKeyFingerprint(Buffer.from('key blob'));
    expect(fp).toMatch(/^SHA256:[A-Za-z0-9+/]+$/);
    expect(sameFingerprint(fp, `${fp.slice('SHA256:'.length)}=`)).toBe(true);
    expect(sameFingerprint(fp, hostKeyFingerprint(Buffer.from('other')))).toBe(false);
  });
});

describe('sshExec', () => {
  it('returns stdout, stderr and a non-zero exit status as a result', async () => {
    const res = await sshExec({ endpoint, command: 'echo out; echo err >&2; exit 3' });
    expect(res).toEqual({ exitCode: 3, stdout: 'out\n', stderr: 'err\n' });
  });

  it('feeds stdin and honours env requests', async () => {
    const res = await sshExec({ endpoint, command: 'cat; printf %s "$GREETING"', stdin: 'from stdin|', env: { GREETING: 'hello there' } });
    expect(res.stdout).toBe('from stdin|hello there');
  });

  it('reports the signal that ended the command', async () => {
    const res = await sshExec({ endpoint, command: 'kill -TERM $$' });
    expect(res.exitCode).toBeNull();
    expect(res.signal).toBe('SIGTERM');
  });

  it('refuses a host whose key is not the pinned one, before running anything', async () => {
    const wrong = { ...endpoint, hostKeySha256: hostKeyFingerprint(Buffer.from('not the key')) };
    const err = await sshError(sshExec({ endpoint: wrong, command: 'touch pwned' }));
    expect(err.code).toBe('host-key-mismatch');
    expect(existsSync(join(h.driver.vmDir(vm), 'pwned'))).toBe(false);
    // waitForSsh gives up at once rather than retrying until its deadline.
    const t0 = Date.now();
    expect((await sshError(waitForSsh({ endpoint: wrong, timeoutMs: 20_000 }))).code).toBe('host-key-mismatch');
    expect(Date.now() - t0).toBeLessThan(5_000);
  });

  it('fails with auth on a wrong key', async () => {
    const other = generateSshKeyPair();
    const err = await sshError(sshExec({ endpoint: { ...endpoint, privateKey: other.privateKey }, command: 'true' }));
    expect(err.code).toBe('auth');
  });

  it('fails with connect when nothing listens', async () => {
    const server = net.createServer();
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as net.AddressInfo).port;
    await new Promise((r) => server.close(r));
    expect((await sshError(sshExec({ endpoint: { ...endpoint, port }, command: 'true' }))).code).toBe('connect');
  });

  it('ends on timeout and on abort, killing the remote command', async () => {
    const t0 = Date.now();
    expect((await sshError(sshExec({ endpoint, command: 'sleep 31', timeoutMs: 1_000 }))).code).toBe('timeout');
    expect(Date.now() - t0).toBeLessThan(3_000);

    const ac = new AbortController();
    setTimeout(() => ac.abort(), 300);
    const t1 = Date.now();
    const err = await sshError(sshExec({ endpoint, command: 'sleep 32', signal: ac.signal }));
    expect(err.code).toBe('aborted');
    expect(Date.now() - t1).toBeLessThan(2_000);
    // Only the guest itself is left: both sleeps got the SIGKILL signal request.
    await waitFor('sleeps killed', async () => (await h.driver.processes({ name: vm })).length === 1);

    const already = new AbortController();
    already.abort();
    expect((await sshError(sshExec({ endpoint, command: 'true', signal: already.signal }))).code).toBe('aborted');
  });

  it('accepts a password when the VM has one', async () => {
    const driver = new FakeDriver({ root: join(h.dir, 'pw'), images: { [IMAGE]: h.template }, password: 's3cret pw' });
    const name = await h.startVm(driver);
    const ep = await driver.sshEndpoint({ name, timeoutMs: 10_000 });
    expect(ep.password).toBe('s3cret pw');
    const { privateKey: _unused, ...passwordOnly } = ep;
    expect((await sshExec({ endpoint: passwordOnly, command: 'echo pw' })).stdout).toBe('pw\n');
    expect((await sshError(sshExec({ endpoint: { ...passwordOnly, password: 'wrong' }, command: 'true' }))).code).toBe('auth');
    await driver.delete({ name });
  });
});

describe('waitForSsh', () => {
  it('returns the host key the driver recorded', async () => {
    const { hostKeySha256 } = await waitForSsh({ endpoint: { ...endpoint, hostKeySha256: undefined }, timeoutMs: 5_000 });
    expect(sameFingerprint(hostKeySha256, endpoint.hostKeySha256!)).toBe(true);
  });

  it('times out on a VM whose SSH never comes up, and ends promptly on abort', async () => {
    const name = h.name();
    await h.driver.clone({ image: IMAGE, name });
    await h.driver.setFault({ name, fault: 'never-boot' });
    await h.driver.start({ name });
    const ep = await h.driver.sshEndpoint({ name, timeoutMs: 5_000 });
    const t0 = Date.now();
    const err = await sshError(waitForSsh({ endpoint: ep, timeoutMs: 1_500, intervalMs: 100 }));
    expect(err.code).toBe('timeout');
    expect(err.cause).toBeInstanceOf(SshError);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(1_400);
    expect(Date.now() - t0).toBeLessThan(5_000);

    const ac = new AbortController();
    setTimeout(() => ac.abort(), 200);
    const t1 = Date.now();
    expect((await sshError(waitForSsh({ endpoint: ep, timeoutMs: 60_000, signal: ac.signal }))).code).toBe('aborted');
    expect(Date.now() - t1).toBeLessThan(1_500);
    await h.driver.delete({ name });
  });

  it('keeps trying through auth failures until the deadline (reject-auth fault)', async () => {
    const name = h.name();
    await h.driver.clone({ image: IMAGE, name });
    await h.driver.setFault({ name, fault: 'reject-auth' });
    await h.driver.start({ name });
    const ep = await h.driver.sshEndpoint({ name, timeoutMs: 5_000 });
    expect((await sshError(sshExec({ endpoint: ep, command: 'true' }))).code).toBe('auth');
    const err = await sshError(waitForSsh({ endpoint: ep, timeoutMs: 800, intervalMs: 100 }));
    expect(err.code).toBe('timeout');
    expect((err.cause as SshError).code).toBe('auth');
    await h.driver.delete({ name });
  });

  it('waits through a boot', async () => {
    const slow = new FakeDriver({ root: h.root, images: { [IMAGE]: h.template }, bootDelayMs: 800 });
    const name = h.name();
    await slow.clone({ image: IMAGE, name });
    const t0 = Date.now();
    await slow.start({ name });
    const ep = await slow.sshEndpoint({ name, timeoutMs: 10_000 });
    expect((await waitForSsh({ endpoint: ep, timeoutMs: 5_000, intervalMs: 100 })).hostKeySha256).toBe(ep.hostKeySha256);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(750);
    await slow.delete({ name });
  });
});
