/**
 * Converts errors from drivers, SSH and GitHub into ApplicationFailures with a stable `type`
 * and the right retryability, so workflows and retry policies never guess from messages.
 */
import { ApplicationFailure } from '@temporalio/common';
import { FailureType } from '../core/failures.js';
import { DriverError } from '../drivers/types.js';
import { GitHubError } from '../github/client.js';
import { SshError } from '../ssh/client.js';

export function toFailure(err: unknown): unknown {
  if (err instanceof ApplicationFailure) return err;
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
    const type =
      err.code === 'capacity'
        ? FailureType.HostCapacity
        : err.code === 'invalid'
          ? FailureType.InvalidInput
          : err.code === 'timeout'
            ? FailureType.BootTimeout
            : err.code === 'not-found'
              ? FailureType.VmLost
              : 'EkidenDriverFailed';
    // Capacity is retryable, but not blindly: wait for a slot to free up.
    return ApplicationFailure.create({
      message: err.message,
      type,
      nonRetryable: type !== 'EkidenDriverFailed' && type !== FailureType.HostCapacity,
      nextRetryDelay: type === FailureType.HostCapacity ? '30s' : undefined,
      cause: err,
    });
  }
  if (err instanceof SshError) {
    return ApplicationFailure.create({
      message: err.message,
      type: err.code === 'timeout' ? FailureType.BootTimeout : `EkidenSsh_${err.code}`,
      nonRetryable: err.code === 'timeout' || err.code === 'host-key-mismatch',
      cause: err,
    });
  }
  return err;
}

/** Runs an activity body, converting failures at the boundary. */
export async function classified<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw toFailure(err);
  }
}
