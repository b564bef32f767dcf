/**
 * Stable failure types. Activities throw ApplicationFailure with one of these as `type`;
 * workflows and retry policies match on them (never on constructor names).
 * Pure module: safe to import from workflow code.
 */
export const FailureType = {
  /** Bad input or configuration: retrying cannot help. */
  InvalidInput: 'EkidenInvalidInput',
  /** GitHub refused the credentials or the permission is missing. */
  GitHubAuth: 'EkidenGitHubAuth',
  /** GitHub answered 404 for the scope (repo/org/enterprise does not exist or is hidden). */
  GitHubScopeNotFound: 'EkidenGitHubScopeNotFound',
  /** The runner is running a job and cannot be removed yet (GitHub 422). Retryable. */
  RunnerBusy: 'EkidenRunnerBusy',
  /** The host has no capacity left for another VM (e.g. Tart's 2-VM limit). */
  HostCapacity: 'EkidenHostCapacity',
  /** The VM image does not exist anywhere the driver can fetch it. */
  ImageNotFound: 'EkidenImageNotFound',
  /** The VM is gone (deleted or its process died) while it was expected to run. */
  VmLost: 'EkidenVmLost',
  /** The runner credential kept on the host was lost (host state wiped); a new one is needed. */
  CredentialLost: 'EkidenCredentialLost',
  /** The guest did not become reachable over SSH before the deadline. */
  BootTimeout: 'EkidenBootTimeout',
  /** The runner's host stopped answering (marked down by its HostWorkflow). */
  HostDown: 'EkidenHostDown',
  /** The runner process in the guest exited without ever taking a job. */
  RunnerExitedIdle: 'EkidenRunnerExitedIdle',
} as const;

export type FailureType = (typeof FailureType)[keyof typeof FailureType];

/** Failure types that must never be retried by an activity retry policy. */
export const NON_RETRYABLE: readonly FailureType[] = [
  FailureType.InvalidInput,
  FailureType.GitHubAuth,
  FailureType.GitHubScopeNotFound,
  FailureType.ImageNotFound,
  FailureType.VmLost,
  FailureType.CredentialLost,
  FailureType.BootTimeout,
];
