/**
 * The closed registry of failure types. Every ApplicationFailure Ekiden raises carries one of
 * these as its `type`; workflows and retry policies match on them, never on constructor names
 * or messages. Each entry says whether retrying can help. A test (test/core/failures.test.ts)
 * fails when code raises a type that is not listed here, or when an entry is raised nowhere.
 *
 * Also the two helpers every layer needs to read a failure: its type and its message, through
 * Temporal's ActivityFailure/ChildWorkflowFailure wrappers. Pure module: safe in workflow code.
 */
import { ApplicationFailure, TemporalFailure } from '@temporalio/common';

export const FailureType = {
  /** Bad input or configuration: retrying cannot help. */
  InvalidInput: 'EkidenInvalidInput',
  /** GitHub refused the credentials or the permission is missing. */
  GitHubAuth: 'EkidenGitHubAuth',
  /** GitHub answered 404 for the scope (repo/org/enterprise does not exist or is hidden). */
  GitHubScopeNotFound: 'EkidenGitHubScopeNotFound',
  /** A runner with that name is already registered (409 on generate-jitconfig). */
  GitHubConflict: 'EkidenGitHubConflict',
  /** GitHub's primary or secondary rate limit: retried after the delay GitHub asks for. */
  GitHubRateLimited: 'EkidenGitHubRateLimited',
  /** A 5xx, a timeout or a network error talking to GitHub. */
  GitHubTransient: 'EkidenGitHubTransient',
  /** The runner is running a job and cannot be removed yet (GitHub 422). */
  RunnerBusy: 'EkidenRunnerBusy',
  /** The host has no capacity left for another VM (e.g. Tart's 2-VM limit). */
  HostCapacity: 'EkidenHostCapacity',
  /** The VM image does not exist anywhere the driver can fetch it. */
  ImageNotFound: 'EkidenImageNotFound',
  /** The VM is gone (deleted or its process died) while it was expected to run. */
  VmLost: 'EkidenVmLost',
  /** A driver operation passed its deadline (start, ip, stop). */
  DriverTimeout: 'EkidenDriverTimeout',
  /** Any other driver failure (the hypervisor CLI failed). */
  DriverFailed: 'EkidenDriverFailed',
  /** The runner credential kept on the host was lost (host state wiped); a new one is needed. */
  CredentialLost: 'EkidenCredentialLost',
  /** The guest did not become reachable over SSH before the deadline. */
  BootTimeout: 'EkidenBootTimeout',
  /** The runner's host stopped answering (marked down by its HostWorkflow). */
  HostDown: 'EkidenHostDown',
  /** SSH: the deadline passed before the command finished. */
  SshTimeout: 'EkidenSshTimeout',
  /** SSH: the guest refused our client key. */
  SshAuth: 'EkidenSshAuth',
  /** SSH: the guest presented another host key than the one pinned for this VM. */
  SshHostKeyMismatch: 'EkidenSshHostKeyMismatch',
  /** SSH: no connection could be made. */
  SshConnect: 'EkidenSshConnect',
  /** SSH: the call was aborted (its activity was cancelled). */
  SshAborted: 'EkidenSshAborted',
  /** SSH: any other failure of the session or the remote command. */
  SshFailed: 'EkidenSshFailed',
  /** An image build failed for a reason a retry cannot fix (a broken template, a failing provisioner, no runner in the image). */
  ImageBuildFailed: 'EkidenImageBuildFailed',
  /** An image build step failed in a way a retry may fix (Packer crashed, the build VM did not come up). */
  ImageBuildInterrupted: 'EkidenImageBuildInterrupted',
  /** The registry refused the credentials or the permission, or its certificate is not trusted. */
  RegistryAuth: 'EkidenRegistryAuth',
  /** The registry could not be reached or answered 5xx; retried with backoff. */
  RegistryUnavailable: 'EkidenRegistryUnavailable',
  /** The host's image cache (its budget, or the disk) has no room for the image. */
  ImageCacheFull: 'EkidenImageCacheFull',
  /** The host's disk filled up under a step (a clone, a log): the runner fails and its pool backs off, instead of retrying into a full disk. */
  HostDiskFull: 'EkidenHostDiskFull',
} as const;

export type FailureType = (typeof FailureType)[keyof typeof FailureType];

/** Whether an activity retry policy may try again after each type. */
export const RETRYABLE: Readonly<Record<FailureType, boolean>> = {
  EkidenInvalidInput: false,
  EkidenGitHubAuth: false,
  EkidenGitHubScopeNotFound: false,
  EkidenGitHubConflict: false,
  EkidenGitHubRateLimited: true,
  EkidenGitHubTransient: true,
  EkidenRunnerBusy: true,
  EkidenHostCapacity: true,
  EkidenImageNotFound: false,
  EkidenVmLost: false,
  EkidenDriverTimeout: true,
  EkidenDriverFailed: true,
  EkidenCredentialLost: false,
  EkidenBootTimeout: false,
  EkidenHostDown: false,
  EkidenSshTimeout: true,
  EkidenSshAuth: true,
  EkidenSshHostKeyMismatch: false,
  EkidenSshConnect: true,
  EkidenSshAborted: true,
  EkidenImageBuildFailed: false,
  EkidenImageBuildInterrupted: true,
  EkidenRegistryAuth: false,
  EkidenRegistryUnavailable: true,
  EkidenImageCacheFull: false,
  EkidenHostDiskFull: false,
  EkidenSshFailed: true,
};

/** Failure types that must never be retried by an activity retry policy. */
export const NON_RETRYABLE: readonly FailureType[] = (Object.keys(RETRYABLE) as FailureType[]).filter((t) => !RETRYABLE[t]);

export function isFailureType(value: string): value is FailureType {
  return Object.prototype.hasOwnProperty.call(RETRYABLE, value);
}

/** The innermost Temporal failure's cause chain, unwrapped down to the ApplicationFailure. */
function innermost(err: unknown): unknown {
  let cur = err;
  while (cur instanceof TemporalFailure && !(cur instanceof ApplicationFailure) && cur.cause) cur = cur.cause;
  return cur;
}

/** The registry type of a failure (through activity/child wrappers), if it has one. */
export function failureType(err: unknown): string | undefined {
  const cause = innermost(err);
  return cause instanceof ApplicationFailure ? (cause.type ?? undefined) : undefined;
}

/** The message worth showing a person: the innermost cause's, not the wrapper's. */
export function failureMessage(err: unknown): string {
  const cause = innermost(err);
  return cause instanceof Error ? cause.message : String(cause);
}

/** The message of anything thrown (an Error's message, or the value itself as text). */
export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
