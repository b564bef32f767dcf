/**
 * Activities that run on the host that owns the VM (task queue `ekiden-host-<id>`): image,
 * clone, boot, runner launch over SSH, waiting for the job, logs, stop and delete.
 * Thin adapters over the VmDriver, the SSH module and the GitHub client; each is safe to
 * run twice. Secrets stay on the host (CredentialStore) and never leave an activity.
 * Every SSH connection pins the guest's host key: the driver's fingerprint, or for drivers
 * that cannot know it (Tart) the one the VM's first connection saw (HostKeyPins, per VM).
 */
import { Context, log } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import { mkdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { FailureType, errorMessage } from '../core/failures.js';
import { KeyedLock } from '../core/keyed-lock.js';
import type { CredentialMode } from '../core/runner-spec.js';
import { DriverError, type SshEndpoint, type VmDriver } from '../drivers/types.js';
import type { RunnerRegistry } from '../github/runners.js';
import type { CredentialStore } from '../host/credential-store.js';
import { HostKeyPins } from '../host/host-keys.js';
import { SshError, waitForSsh } from '../ssh/client.js';
import { collectDiag, launchRunner as sshLaunchRunner, runnerStatus, stopRunner } from '../ssh/runner.js';
import { bootTimeout, classified } from './failures.js';

export interface HostActivityDeps {
  hostId: string;
  driver: VmDriver;
  credentials: CredentialStore;
  /** GitHub registrations for this host's scope (credentials are fetched where they are used). */
  github: RunnerRegistry;
  /** URL `config.sh --url` registers against (registration-token mode). */
  githubRunnerUrl: string;
  /** Where runner `_diag` logs are kept after their VM is gone. */
  logsDir: string;
  /** How often the await activities look at the guest. */
  pollIntervalMs?: number;
  /**
   * Per-VM SSH host key pins, for drivers that cannot tell a guest's host key up front (Tart).
   * Default: `host-keys` next to logsDir (both in the host's data dir).
   */
  hostKeysDir?: string;
}


export interface AwaitJobStartResult {
  kind: 'job-started' | 'idle-timeout' | 'runner-exited';
  jobId?: string;
  /** Epoch ms when the job was first seen (by this or an earlier attempt). */
  startedAt?: number;
}

export interface AwaitRunnerExitResult {
  kind: 'exited' | 'job-timeout';
  exitCode?: number;
  /** The guest's `_diag` logs were copied to the host. */
  logsCollected: boolean;
}

function heartbeatEvery<T>(ms: number, fn: (signal: AbortSignal) => Promise<T>, details?: () => unknown): Promise<T> {
  const ctx = Context.current();
  ctx.heartbeat(details?.());
  const timer = setInterval(() => ctx.heartbeat(details?.()), ms);
  return fn(ctx.cancellationSignal).finally(() => clearInterval(timer));
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const t = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      reject(signal.reason);
    };
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

/** Credential requests per runner on this host, one at a time. */
const credentialLock = new KeyedLock();

export function createHostActivities(deps: HostActivityDeps) {
  const { driver } = deps;
  const poll = deps.pollIntervalMs ?? 1_000;
  const beat = Math.max(250, Math.min(poll, 2_000));
  /** Every host step heartbeats while it runs (guests can be slow) and converts failures. */
  const step = <T>(fn: (signal: AbortSignal) => Promise<T>): Promise<T> => classified(() => heartbeatEvery(beat, fn));

  const hostKeys = new HostKeyPins(deps.hostKeysDir ?? join(dirname(deps.logsDir), 'host-keys'));

  /**
   * The endpoint with the VM's host key pinned: the driver's fingerprint when it knows it,
   * else the one the VM's first connection recorded (bootVm's; made here when there is none).
   */
  async function endpointFor(vmName: string, signal: AbortSignal): Promise<SshEndpoint> {
    const endpoint = await withPin(vmName, await driver.sshEndpoint({ name: vmName, timeoutMs: 10_000, signal }));
    if (endpoint.hostKeySha256) return endpoint;
    const { hostKeySha256 } = await waitForSsh({ endpoint, timeoutMs: 30_000, signal, intervalMs: Math.min(poll, 250) });
    await hostKeys.pin(vmName, hostKeySha256);
    return { ...endpoint, hostKeySha256 };
  }

  /** Adds the VM's recorded pin to an endpoint whose driver gave no fingerprint. */
  async function withPin(vmName: string, endpoint: SshEndpoint): Promise<SshEndpoint> {
    if (endpoint.hostKeySha256) return endpoint;
    const pinned = await hostKeys.get(vmName);
    return pinned ? { ...endpoint, hostKeySha256: pinned } : endpoint;
  }

  /** SSH only knows the address: a host key mismatch names the VM too. */
  function namingVm<T>(vmName: string, run: Promise<T>): Promise<T> {
    return run.catch((err: unknown) => {
      if (err instanceof SshError && err.code === 'host-key-mismatch' && !err.message.startsWith(`VM ${vmName}`)) {
        throw new SshError(err.code, `VM ${vmName}: ${err.message}`, { cause: err });
      }
      throw err;
    });
  }

  /** A host step that talks to the VM's guest over SSH. */
  const vmStep = <T>(vmName: string, fn: (signal: AbortSignal) => Promise<T>): Promise<T> => step((signal) => namingVm(vmName, fn(signal)));

  return {
    /** Make sure the image is cached on this host; pulls when missing or its digest differs. */
    async ensureImage(args: { image: string; digest?: string }): Promise<{ digest: string; pulled: boolean }> {
      return step(async (signal) => {
        const local = await driver.localImage({ image: args.image });
        if (local && (!args.digest || local.digest === args.digest)) return { digest: local.digest, pulled: false };
        log.info('pulling image', { host: deps.hostId, image: args.image });
        const pulled = await driver.pullImage({ image: args.image, signal }).catch((err: unknown) => {
          if (err instanceof DriverError && err.code === 'not-found') {
            throw ApplicationFailure.nonRetryable(`image ${args.image} not found: ${err.message}`, FailureType.ImageNotFound);
          }
          throw err;
        });
        if (args.digest && pulled.digest !== args.digest) {
          throw ApplicationFailure.nonRetryable(
            `image ${args.image} has digest ${pulled.digest}, pool wants ${args.digest}`,
            FailureType.ImageNotFound,
          );
        }
        return { digest: pulled.digest, pulled: true };
      });
    },

    /**
     * Get a runner credential from GitHub and keep it on this host for launchRunner.
     * Returns only non-secret facts. Safe to repeat: an existing credential is reused.
     */
    async obtainRunnerCredential(args: {
      runnerName: string;
      labels: string[];
      runnerGroupId: number;
      mode: CredentialMode;
    }): Promise<{ runnerId?: number }> {
      // One attempt at a time per runner on this host: a timed-out attempt that is still
      // running must not race its retry into a second registration.
      return classified(() => heartbeatEvery(beat, () => credentialLock.run(args.runnerName, () => obtainCredential(args))));
    },

    /** Forget the runner credential kept on this host (cleanup). */
    async discardCredential(args: { runnerName: string }): Promise<void> {
      await deps.credentials.delete(args.runnerName);
    },

    async cloneVm(args: { image: string; vmName: string; cpu?: number; memoryMb?: number }): Promise<void> {
      return classified(async () => {
        await heartbeatEvery(beat, async (signal) => {
          // A pin left by an earlier VM of this name (removed behind our back) is not this VM's.
          if (!(await driver.get({ name: args.vmName, signal }))) await hostKeys.forget(args.vmName);
          await driver.clone({ image: args.image, name: args.vmName, cpu: args.cpu, memoryMb: args.memoryMb, signal });
        }).catch(
          (err: unknown) => {
            if (err instanceof DriverError && err.code === 'not-found') {
              throw ApplicationFailure.nonRetryable(`image ${args.image} is not cached on host ${deps.hostId}: ${err.message}`, FailureType.ImageNotFound);
            }
            throw err;
          },
        );
        log.info('vm cloned', { host: deps.hostId, vm: args.vmName, image: args.image });
      });
    },

    /** Start the VM and wait until its SSH server accepts us, within the boot deadline. */
    async bootVm(args: { vmName: string; bootTimeoutMs: number }): Promise<{ bootMs: number }> {
      return classified(async () => {
        const started = Date.now();
        await heartbeatEvery(beat, async (signal) => {
          await driver.start({ name: args.vmName, signal });
          const endpoint = await withPin(args.vmName, await driver.sshEndpoint({ name: args.vmName, timeoutMs: args.bootTimeoutMs, signal }));
          const left = Math.max(1_000, args.bootTimeoutMs - (Date.now() - started));
          // Connection attempts are cheap; polling often keeps boot → ready tight.
          const seen = await namingVm(args.vmName, waitForSsh({ endpoint, timeoutMs: left, signal, intervalMs: Math.min(poll, 250) }));
          // No fingerprint from the driver and none recorded: this first connection pins it.
          if (!endpoint.hostKeySha256) await hostKeys.pin(args.vmName, seen.hostKeySha256);
        }).catch((err: unknown) => {
          throw bootTimeout(args.vmName, err);
        });
        const bootMs = Date.now() - started;
        log.info('vm booted', { host: deps.hostId, vm: args.vmName, bootMs });
        return { bootMs };
      });
    },

    /** Start the runner in the guest, detached from the SSH session. Never starts a second one. */
    async launchRunner(args: { vmName: string; runnerName: string; runnerDir: string }): Promise<{ alreadyRunning: boolean }> {
      return vmStep(args.vmName, async (signal) => {
        const endpoint = await endpointFor(args.vmName, signal);
        const credential = await deps.credentials.get(args.runnerName);
        if (!credential) {
          // Gone after a launch whose result was lost? Then the runner is already there.
          if ((await runnerStatus({ endpoint, runnerDir: args.runnerDir, signal })).launched) return { alreadyRunning: true };
          throw ApplicationFailure.nonRetryable(`no credential kept on host ${deps.hostId} for runner ${args.runnerName}`, FailureType.CredentialLost);
        }
        const res = await sshLaunchRunner({ endpoint, runnerDir: args.runnerDir, credential, signal });
        log.info('runner launched', { host: deps.hostId, vm: args.vmName, runner: args.runnerName, pid: res.pid });
        return { alreadyRunning: res.alreadyRunning || res.alreadyLaunched };
      });
    },

    /** Wait until the runner takes a job, exits, or the idle deadline passes. Heartbeats. */
    async awaitJobStart(args: { vmName: string; runnerDir: string; idleDeadline: number }): Promise<AwaitJobStartResult> {
      return vmStep(args.vmName, async (signal): Promise<AwaitJobStartResult> => {
        for (;;) {
          const endpoint = await endpointForRunning(args.vmName, signal);
          const st = await runnerStatus({ endpoint, runnerDir: args.runnerDir, signal });
          if (st.jobStarted) return { kind: 'job-started', jobId: st.jobId, startedAt: st.jobStartedAt ?? Date.now() };
          if (st.launched && !st.running) return { kind: 'runner-exited' };
          if (Date.now() >= args.idleDeadline) return { kind: 'idle-timeout' };
          await sleep(Math.min(poll, Math.max(0, args.idleDeadline - Date.now())), signal);
        }
      });
    },

    /** Wait until the runner process exits (its one job done) or the job deadline passes. */
    async awaitRunnerExit(args: { vmName: string; runnerName: string; runnerDir: string; jobDeadline: number }): Promise<AwaitRunnerExitResult> {
      return vmStep(args.vmName, async (signal): Promise<AwaitRunnerExitResult> => {
        for (;;) {
          const endpoint = await endpointForRunning(args.vmName, signal);
          const st = await runnerStatus({ endpoint, runnerDir: args.runnerDir, signal });
          const done = st.launched && !st.running;
          const timedOut = !done && Date.now() >= args.jobDeadline;
          if (timedOut) await stopRunner({ endpoint, runnerDir: args.runnerDir, signal });
          if (done || timedOut) {
            // The runner is finished: keep its logs now, while we hold the connection.
            const logs = await saveDiag(endpoint, args.runnerName, args.runnerDir, signal).catch((err: unknown) => {
              log.warn('could not collect runner logs', { vm: args.vmName, error: errorMessage(err) });
              return undefined;
            });
            return { kind: done ? 'exited' : 'job-timeout', exitCode: st.exitCode, logsCollected: logs !== undefined };
          }
          await sleep(Math.min(poll, Math.max(0, args.jobDeadline - Date.now())), signal);
        }
      });
    },

    /** Stop the runner process (idle recycle after GitHub forgot it). */
    async stopGuestRunner(args: { vmName: string; runnerDir: string }): Promise<void> {
      return vmStep(args.vmName, async (signal) => {
        const vm = await driver.get({ name: args.vmName, signal });
        if (vm?.state !== 'running') return;
        await stopRunner({ endpoint: await endpointFor(args.vmName, signal), runnerDir: args.runnerDir, signal });
      });
    },

    /** Copy the guest's runner `_diag` logs to the host before the VM goes away (best effort). */
    async collectRunnerLogs(args: { vmName: string; runnerName: string; runnerDir: string }): Promise<{ files: string[]; dir?: string }> {
      return vmStep(args.vmName, async (signal) => {
        const vm = await driver.get({ name: args.vmName, signal });
        if (vm?.state !== 'running') return { files: [] };
        return saveDiag(await endpointFor(args.vmName, signal), args.runnerName, args.runnerDir, signal);
      });
    },

    /** Stop (gracefully, then forced) and delete the VM with all its files. Missing VMs succeed. */
    async destroyVm(args: { vmName: string; stopTimeoutMs?: number }): Promise<void> {
      return classified(async () => {
        await heartbeatEvery(beat, async (signal) => {
          await driver.stop({ name: args.vmName, timeoutMs: args.stopTimeoutMs, signal });
          await driver.delete({ name: args.vmName, signal });
          await hostKeys.forget(args.vmName);
        });
        log.info('vm deleted', { host: deps.hostId, vm: args.vmName });
      });
    },
  };

  async function saveDiag(endpoint: SshEndpoint, runnerName: string, runnerDir: string, signal: AbortSignal) {
    const dir = join(deps.logsDir, runnerName);
    await mkdir(dir, { recursive: true });
    const files = await collectDiag({ endpoint, runnerDir, destDir: dir, signal });
    return { files, dir };
  }

  async function obtainCredential(args: { runnerName: string; labels: string[]; runnerGroupId: number; mode: CredentialMode }) {
    const existing = await deps.credentials.get(args.runnerName);
    if (existing) return { runnerId: existing.runnerId };
    if (args.mode === 'jit') {
      const jit = await deps.github.createJitConfig({ name: args.runnerName, labels: args.labels, runnerGroupId: args.runnerGroupId });
      await deps.credentials.put(args.runnerName, { kind: 'jit', encodedJitConfig: jit.encodedJitConfig, runnerId: jit.runnerId });
      log.info('runner registered (JIT)', { host: deps.hostId, runner: args.runnerName, runnerId: jit.runnerId });
      return { runnerId: jit.runnerId };
    }
    const reg = await deps.github.createRegistrationToken();
    await deps.credentials.put(args.runnerName, {
      kind: 'registration-token',
      url: deps.githubRunnerUrl,
      token: reg.token,
      name: args.runnerName,
      labels: args.labels,
      runnerGroup: args.runnerGroupId === 1 ? undefined : String(args.runnerGroupId),
    });
    log.info('registration token obtained', { host: deps.hostId, runner: args.runnerName });
    return {};
  }

  async function endpointForRunning(vmName: string, signal: AbortSignal) {
    const vm = await driver.get({ name: vmName, signal });
    if (vm?.state !== 'running') {
      throw ApplicationFailure.nonRetryable(`VM ${vmName} is ${vm ? 'not running' : 'gone'}`, FailureType.VmLost);
    }
    return endpointFor(vmName, signal);
  }
}

export type HostActivities = ReturnType<typeof createHostActivities>;
