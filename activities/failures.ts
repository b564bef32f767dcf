/**
 * Converts errors from drivers, SSH and GitHub into ApplicationFailures with a stable `type`
 * and the right retryability, so workflows and retry policies never guess from messages.
 */
import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import { FailureType, RETRYABLE } from '../core/failures.js';
import { DriverError, type DriverErrorCode } from '../drivers/types.js';
import { GitHubError } from '../github/client.js';
import { SshError, type SshErrorCode } from '../ssh/client.js';

const DRIVER_FAILURE: Record<DriverErrorCode, FailureType> = {
  capacity: FailureType.HostCapacity,
  invalid: FailureType.InvalidInput,
  timeout: FailureType.DriverTimeout,
  'not-found': FailureType.VmLost,
  auth: FailureType.RegistryAuth,
  unavailable: FailureType.RegistryUnavailable,
  'cache-full': FailureType.ImageCacheFull,
  failed: FailureType.DriverFailed,
};

const SSH_FAILURE: Record<SshErrorCode, FailureType> = {
  timeout: FailureType.SshTimeout,
  auth: FailureType.SshAuth,
  'host-key-mismatch': FailureType.SshHostKeyMismatch,
  connect: FailureType.SshConnect,
  aborted: FailureType.SshAborted,
  failed: FailureType.SshFailed,
};

/** The "no space left on device" somewhere in `err`'s cause chain (an fs call's ENOSPC, or a tool's stderr), if any. */
export function diskFullMessage(err: unknown): string | undefined {
  let e: unknown = err;
  for (let depth = 0; e instanceof Error && depth < 5; depth++) {
    if ((e as { code?: unknown }).code === 'ENOSPC' || /no space left on device/i.test(e.message)) return e.message;
    e = (e as { cause?: unknown }).cause;
  }
  return undefined;
}

export function toFailure(err: unknown): unknown {
  if (err instanceof ApplicationFailure) return err;
  const full = err instanceof DriverError && err.code === 'cache-full' ? undefined : diskFullMessage(err);
  if (full !== undefined) {
    // Retrying into a full disk only fills it again: the runner fails, cleans up, and its pool backs off.
    return ApplicationFailure.create({
      message: `the host's disk is full: ${full.split('\n')[0]}; free space on the host, or lower its capacity`,
      type: FailureType.HostDiskFull,
      nonRetryable: true,
      cause: err instanceof Error ? err : undefined,
    });
  }
  if (err instanceof GitHubError) {
    return ApplicationFailure.create({
      message: err.message,
      type: err.type,
      nonRetryable: !err.retryable,
      nextRetryDelay: err.retryAfterSeconds ? `${err.retryAfterSeconds}s` : undefined,
      cause: err,
    });
  }
  if (err instanceof DriverError) {
    const type = DRIVER_FAILURE[err.code];
    // Capacity is retryable, but not blindly: wait for a slot to free up.
    return ApplicationFailure.create({
      message: err.message,
      type,
      nonRetryable: !RETRYABLE[type],
      nextRetryDelay: type === FailureType.HostCapacity ? '30s' : undefined,
      cause: err,
    });
  }
  if (err instanceof SshError) {
    // A slow command is worth another try; a guest presenting the wrong host key is not.
    const type = SSH_FAILURE[err.code];
    return ApplicationFailure.create({
      message: err.message,
      type,
      nonRetryable: !RETRYABLE[type],
      cause: err,
    });
  }
  return err;
}

/** Boot deadlines passed: the VM never became reachable. Not retried on the same VM. */
export function bootTimeout(vmName: string, err: unknown): unknown {
  if ((err instanceof SshError || err instanceof DriverError) && err.code === 'timeout') {
    return ApplicationFailure.create({ message: `VM ${vmName} did not answer SSH in time: ${err.message}`, type: FailureType.BootTimeout, nonRetryable: true, cause: err });
  }
  return err;
}

/** The activity's cancellation, when it was cancelled (outside an activity: undefined). */
function cancellation(): unknown {
  try {
    const signal = Context.current().cancellationSignal;
    return signal.aborted ? (signal.reason as unknown) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Runs an activity body, converting failures at the boundary. A body that fails because it
 * was cancelled (an aborted SSH wait, say) reports the cancellation, not the abort error.
 */
export async function classified<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw cancellation() ?? toFailure(err);
  }
}
