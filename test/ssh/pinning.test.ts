/**
 * Host key pin-on-first-use for drivers that cannot tell a guest's host key up front (Tart):
 * the host activities against fake VMs (real SSH servers) behind a driver that hides the
 * fingerprint the fake driver knows.
 */
import { ApplicationFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import { existsSync, readFileSync } from 'node:fs';
import { readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FailureType } from '../../core/failures.js';
import { createHostActivities, type HostActivities } from '../../activities/host.js';
import type { FakeDriver } from '../../drivers/fake.js';
import type { VmDriver } from '../../drivers/types.js';
import type { RunnerRegistry } from '../../github/runners.js';
import { CredentialStore } from '../../host/credential-store.js';
import { HostKeyPins } from '../../host/host-keys.js';
import { sameFingerprint, SshError } from '../../ssh/client.js';
import { generateSshKeyPair } from '../../ssh/keys.js';
import { createFakeHost, IMAGE, type FakeHost } from '../drivers/fake-fixture.js';

/** The fake driver as a driver that cannot know host keys in advance (like Tart). */
function withoutHostKeys(d: FakeDriver): VmDriver {
  return {
    kind: 'tart',
    localImage: (a) => d.localImage(a),
    pullImage: (a) => d.pullImage(a),
    clone: (a) => d.clone(a),
    start: (a) => d.start(a),
    stop: (a) => d.stop(a),
    delete: (a) => d.delete(a),
    list: (a) => d.list(a),
    get: (a) => d.get(a),
    async sshEndpoint(a) {
      const { hostKeySha256: _known, ...endpoint } = await d.sshEndpoint(a);
      return endpoint;
    },
  };
}

async function failure(p: Promise<unknown>): Promise<ApplicationFailure> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(ApplicationFailure);
    return err as ApplicationFailure;
  }
  throw new Error('expected an ApplicationFailure');
}

let h: FakeHost;
let credentials: CredentialStore;
let pinsDir: string;
const env = new MockActivityEnvironment(undefined, { logger: new DefaultLogger('WARN', () => {}) });

function activities(driver: VmDriver): HostActivities {
  return createHostActivities({
    hostId: 'pin-test',
    driver,
    credentials,
    github: {} as RunnerRegistry,
    githubRunnerUrl: 'http://127.0.0.1:1/unused',
    logsDir: join(h.dir, 'host', 'runner-logs'),
    pollIntervalMs: 50,
  });
}

/** The fingerprint the guest really presents, as the fake driver recorded it at clone. */
async function realFingerprint(vm: string): Promise<string> {
  return (await h.driver.sshEndpoint({ name: vm, timeoutMs: 10_000 })).hostKeySha256!;
}

beforeAll(async () => {
  h = await createFakeHost();
  await h.driver.pullImage({ image: IMAGE });
  credentials = new CredentialStore(join(h.dir, 'host', 'credentials'));
  pinsDir = join(h.dir, 'host', 'host-keys');
});
afterAll(async () => {
  expect(await h.cleanup()).toEqual([]);
});

describe('pin on first use', () => {
  let acts: HostActivities;
  let vm: string;
  let firstPin: string;
  beforeAll(() => {
    acts = activities(withoutHostKeys(h.driver));
    vm = h.name();
  });

  it('the first connection (boot) pins the key the VM presented; later connections use the pin', async () => {
    await env.run(acts.cloneVm, { image: IMAGE, vmName: vm });
    expect(existsSync(join(pinsDir, vm))).toBe(false);
    await env.run(acts.bootVm, { vmName: vm, bootTimeoutMs: 20_000 });
    firstPin = readFileSync(join(pinsDir, vm), 'utf8').trim();
    expect(sameFingerprint(firstPin, await realFingerprint(vm))).toBe(true);

    const runnerName = vm.replace(/-\d+$/, '');
    await credentials.put(runnerName, { kind: 'jit', encodedJitConfig: 'jit-config-for-pin-test' });
    await env.run(acts.launchRunner, { vmName: vm, runnerName, runnerDir: 'actions-runner' });
    const idle = await env.run(acts.awaitJobStart, { vmName: vm, runnerDir: 'actions-runner', idleDeadline: Date.now() });
    expect(idle).toMatchObject({ kind: 'idle-timeout' });
    // A retried boot of the same VM (the first attempt's result lost) checks against the pin.
    await env.run(acts.bootVm, { vmName: vm, bootTimeoutMs: 20_000 });
    expect(readFileSync(join(pinsDir, vm), 'utf8').trim()).toBe(firstPin);
  });

  it('a VM of the same name presenting another host key is refused before anything runs, and not retried', async () => {
    await h.driver.stop({ name: vm, timeoutMs: 2_000 });
    const other = generateSshKeyPair();
    await writeFile(join(h.driver.vmDir(vm), '.fake', 'host_key'), other.privateKey, { mode: 0o600 });
    await h.driver.start({ name: vm });
    await rm(join(h.driver.vmDir(vm), '.ekiden'), { recursive: true, force: true });

    const runnerName = vm.replace(/-\d+$/, '');
    for (const attempt of [
      () => env.run(acts.launchRunner, { vmName: vm, runnerName, runnerDir: 'actions-runner' }),
      () => env.run(acts.awaitJobStart, { vmName: vm, runnerDir: 'actions-runner', idleDeadline: Date.now() + 60_000 }),
      () => env.run(acts.stopGuestRunner, { vmName: vm, runnerDir: 'actions-runner' }),
      () => env.run(acts.collectRunnerLogs, { vmName: vm, runnerName, runnerDir: 'actions-runner' }),
      () => env.run(acts.bootVm, { vmName: vm, bootTimeoutMs: 20_000 }),
    ]) {
      const err = await failure(attempt());
      expect(err.type).toBe(FailureType.SshHostKeyMismatch);
      expect(err.nonRetryable).toBe(true);
      expect(err.message).toContain(`VM ${vm}`);
      expect(err.message).toContain(other.fingerprint);
      expect(err.message).toContain(firstPin);
    }
    // Nothing reached the guest's shell, and the pin stayed what the first connection saw.
    expect(existsSync(join(h.driver.vmDir(vm), '.ekiden'))).toBe(false);
    expect(readFileSync(join(pinsDir, vm), 'utf8').trim()).toBe(firstPin);
  });

  it('destroying the VM forgets its pin; a new VM of that name pins its own key', async () => {
    await env.run(acts.destroyVm, { vmName: vm, stopTimeoutMs: 1_000 });
    expect(existsSync(join(pinsDir, vm))).toBe(false);
    await env.run(acts.cloneVm, { image: IMAGE, vmName: vm });
    await env.run(acts.bootVm, { vmName: vm, bootTimeoutMs: 20_000 });
    const second = readFileSync(join(pinsDir, vm), 'utf8').trim();
    expect(sameFingerprint(second, await realFingerprint(vm))).toBe(true);
    expect(sameFingerprint(second, firstPin)).toBe(false);
    await env.run(acts.destroyVm, { vmName: vm, stopTimeoutMs: 1_000 });
    expect(await readdir(pinsDir)).toEqual([]);
  });

  it('a pin left behind by a VM removed behind our back does not outlive it', async () => {
    const name = h.name();
    await new HostKeyPins(pinsDir).pin(name, generateSshKeyPair().fingerprint);
    await env.run(acts.cloneVm, { image: IMAGE, vmName: name });
    expect(existsSync(join(pinsDir, name))).toBe(false);
    await env.run(acts.bootVm, { vmName: name, bootTimeoutMs: 20_000 });
    expect(sameFingerprint(readFileSync(join(pinsDir, name), 'utf8'), await realFingerprint(name))).toBe(true);
    await env.run(acts.destroyVm, { vmName: name, stopTimeoutMs: 1_000 });
    expect(existsSync(join(pinsDir, name))).toBe(false);
  });

  it('the launch pins the key when the boot left no pin (a VM booted before pins were kept)', async () => {
    const name = h.name();
    await env.run(acts.cloneVm, { image: IMAGE, vmName: name });
    await env.run(acts.bootVm, { vmName: name, bootTimeoutMs: 20_000 });
    await new HostKeyPins(pinsDir).forget(name);
    const runnerName = name.replace(/-\d+$/, '');
    await credentials.put(runnerName, { kind: 'jit', encodedJitConfig: 'jit-config-for-pin-test' });
    await env.run(acts.launchRunner, { vmName: name, runnerName, runnerDir: 'actions-runner' });
    expect(sameFingerprint(readFileSync(join(pinsDir, name), 'utf8'), await realFingerprint(name))).toBe(true);
    await env.run(acts.destroyVm, { vmName: name, stopTimeoutMs: 1_000 });
  });
});

describe('drivers that know the host key', () => {
  it('keep no pin files: the driver’s fingerprint is the pin', async () => {
    const acts = activities(h.driver);
    const name = h.name();
    await env.run(acts.cloneVm, { image: IMAGE, vmName: name });
    await env.run(acts.bootVm, { vmName: name, bootTimeoutMs: 20_000 });
    expect(existsSync(join(pinsDir, name))).toBe(false);
    await env.run(acts.destroyVm, { vmName: name, stopTimeoutMs: 1_000 });
  });
});

describe('HostKeyPins', () => {
  it('first writer wins, also when racing; a different key is a host-key-mismatch', async () => {
    const pins = new HostKeyPins(join(h.dir, 'pins-unit'));
    const name = h.name();
    const keys = Array.from({ length: 8 }, () => generateSshKeyPair().fingerprint);
    const results = await Promise.allSettled(keys.map((k) => pins.pin(name, k)));
    const pinned = await pins.get(name);
    expect(keys).toContain(pinned);
    results.forEach((r, i) => {
      if (keys[i] === pinned) expect(r.status).toBe('fulfilled');
      else {
        expect(r.status).toBe('rejected');
        const err = (r as PromiseRejectedResult).reason as SshError;
        expect(err).toBeInstanceOf(SshError);
        expect(err.code).toBe('host-key-mismatch');
      }
    });
    await pins.pin(name, pinned!); // the same key again is fine
    expect(await readdir(join(h.dir, 'pins-unit'))).toEqual([name]); // no temp files left
    await pins.forget(name);
    await pins.forget(name);
    expect(await pins.get(name)).toBeUndefined();
  });

  it('refuses names that are not VM names and values that are not fingerprints', async () => {
    const pins = new HostKeyPins(join(h.dir, 'pins-unit'));
    await expect(pins.get('../etc/passwd')).rejects.toThrow(/not a VM name/);
    await expect(pins.pin(h.name(), 'not a fingerprint')).rejects.toThrow(/not a SHA256 fingerprint/);
  });
});
