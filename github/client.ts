/**
 * GitHub REST client for runner management: @octokit/rest with the retry and throttling
 * plugins, PAT or GitHub App auth, repo/org/enterprise scope, configurable API URL (GHES).
 * Errors are classified here, at the boundary, into retryable or not (GitHubError).
 */
import { Octokit } from '@octokit/rest';
import { retry } from '@octokit/plugin-retry';
import { throttling } from '@octokit/plugin-throttling';
import { createAppAuth } from '@octokit/auth-app';
import Bottleneck from 'bottleneck';
import { RequestError } from '@octokit/request-error';
import { FailureType } from '../core/failures.js';

export type GitHubScope =
  | { kind: 'repo'; owner: string; repo: string }
  | { kind: 'org'; org: string }
  | { kind: 'enterprise'; enterprise: string };

export type GitHubAuth =
  | { kind: 'token'; token: string }
  | { kind: 'app'; appId: number; privateKey: string; installationId: number };

export interface GitHubSettings {
  /** REST API base, e.g. https://api.github.com or https://ghes.example.com/api/v3 */
  apiUrl: string;
  auth: GitHubAuth;
  scope: GitHubScope;
  /** Rate-limit waits longer than this become a retryable error for the caller to back off. */
  maxInlineWaitSeconds?: number;
  /**
   * Spacing between write requests (POST/DELETE) in this process. GitHub asks for at least
   * one second (the default); 0 is for the local emulator, which has no such rule.
   */
  writeSpacingMs?: number;
}

export interface GitHubRunner {
  id: number;
  name: string;
  os: string;
  status: 'online' | 'offline';
  busy: boolean;
  labels: Array<{ id?: number; name: string; type?: string }>;
  runner_group_id?: number;
  ephemeral?: boolean;
}

export type Logger = (level: 'debug' | 'info' | 'warn' | 'error', msg: string, fields?: Record<string, unknown>) => void;

/** A GitHub failure classified at the boundary: `type` is stable, `retryable` says what to do. */
export class GitHubError extends Error {
  override readonly name = 'GitHubError';
  readonly type: FailureType;
  readonly status?: number;
  readonly retryable: boolean;
  /** For rate limits: seconds to wait before trying again. */
  readonly retryAfterSeconds?: number;
  constructor(
    message: string,
    init: { type: GitHubError['type']; status?: number; retryable: boolean; retryAfterSeconds?: number; cause?: unknown },
  ) {
    super(message, { cause: init.cause });
    this.type = init.type;
    this.status = init.status;
    this.retryable = init.retryable;
    this.retryAfterSeconds = init.retryAfterSeconds;
  }
}

export function scopePath(scope: GitHubScope): string {
  switch (scope.kind) {
    case 'repo':
      return `/repos/${encodeURIComponent(scope.owner)}/${encodeURIComponent(scope.repo)}`;
    case 'org':
      return `/orgs/${encodeURIComponent(scope.org)}`;
    case 'enterprise':
      return `/enterprises/${encodeURIComponent(scope.enterprise)}`;
  }
}

/** The URL a runner registers against (`config.sh --url`). */
export function scopeWebUrl(apiUrl: string, scope: GitHubScope): string {
  const api = new URL(apiUrl);
  const web =
    api.hostname === 'api.github.com'
      ? 'https://github.com'
      : api.pathname.replace(/\/$/, '').endsWith('/api/v3')
        ? `${api.origin}${api.pathname.replace(/\/api\/v3\/?$/, '')}`
        : api.origin + api.pathname.replace(/\/$/, '');
  switch (scope.kind) {
    case 'repo':
      return `${web}/${scope.owner}/${scope.repo}`;
    case 'org':
      return `${web}/${scope.org}`;
    case 'enterprise':
      return `${web}/enterprises/${scope.enterprise}`;
  }
}

const ThrottledOctokit = Octokit.plugin(retry, throttling);

export function createOctokit(settings: GitHubSettings, log: Logger = () => {}): Octokit {
  const maxWait = settings.maxInlineWaitSeconds ?? 10;
  const throttle = {
    onRateLimit: (retryAfter: number, options: { method: string; url: string }, _o: unknown, retryCount: number) => {
      log('warn', 'github primary rate limit', { method: options.method, url: options.url, retryAfter, retryCount });
      return retryCount < 2 && retryAfter <= maxWait;
    },
    onSecondaryRateLimit: (retryAfter: number, options: { method: string; url: string }, _o: unknown, retryCount: number) => {
      log('warn', 'github secondary rate limit', { method: options.method, url: options.url, retryAfter, retryCount });
      return retryCount < 2 && retryAfter <= maxWait;
    },
  };
  const spacing = settings.writeSpacingMs ?? 1_000;
  if (spacing !== 1_000) {
    (throttle as Record<string, unknown>).write = new Bottleneck.Group({ id: `ekiden-write-${spacing}`, maxConcurrent: spacing > 0 ? 1 : null, minTime: spacing });
  }
  const common = {
    baseUrl: settings.apiUrl.replace(/\/$/, ''),
    userAgent: 'ekiden',
    throttle,
    retry: { retries: 2 },
    // Never let octokit print requests: URLs are fine, but keep one logging path (ours).
    log: { debug: () => {}, info: () => {}, warn: (m: string) => log('warn', m), error: (m: string) => log('error', m) },
    request: { timeout: 30_000 },
  };
  if (settings.auth.kind === 'token') {
    return new ThrottledOctokit({ ...common, auth: settings.auth.token });
  }
  return new ThrottledOctokit({
    ...common,
    authStrategy: createAppAuth,
    auth: { appId: settings.auth.appId, privateKey: settings.auth.privateKey, installationId: settings.auth.installationId },
  });
}

function headerNumber(headers: Record<string, unknown> | undefined, name: string): number | undefined {
  const v = headers?.[name];
  if (v === undefined || v === null) return undefined;
  const n = Number(v);
  return Number.isFinite(n) ? n : undefined;
}

/** Map any error from octokit to a GitHubError with a stable type. */
export function classifyGitHubError(err: unknown, what: string): GitHubError {
  if (err instanceof GitHubError) return err;
  if (err instanceof RequestError) {
    const status = err.status;
    const headers = err.response?.headers as Record<string, unknown> | undefined;
    const data = err.response?.data as { message?: string } | undefined;
    const message = data?.message ?? err.message;
    const short = `${what}: GitHub answered ${status}: ${message}`;
    const remaining = headerNumber(headers, 'x-ratelimit-remaining');
    if ((status === 403 || status === 429) && (remaining === 0 || /rate limit/i.test(message))) {
      const retryAfter = headerNumber(headers, 'retry-after');
      const reset = headerNumber(headers, 'x-ratelimit-reset');
      const wait = retryAfter ?? (reset !== undefined ? Math.max(1, reset - Math.floor(Date.now() / 1000)) : 60);
      return new GitHubError(short, { type: FailureType.GitHubRateLimited, status, retryable: true, retryAfterSeconds: wait, cause: err });
    }
    if (status === 401 || status === 403) return new GitHubError(short, { type: FailureType.GitHubAuth, status, retryable: false, cause: err });
    if (status === 404) return new GitHubError(short, { type: FailureType.GitHubScopeNotFound, status, retryable: false, cause: err });
    if (status === 409) return new GitHubError(short, { type: FailureType.GitHubConflict, status, retryable: false, cause: err });
    if (status === 422) return new GitHubError(short, { type: FailureType.InvalidInput, status, retryable: false, cause: err });
    if (status >= 500 || status === 429 || status === 408) {
      return new GitHubError(short, { type: FailureType.GitHubTransient, status, retryable: true, cause: err });
    }
    return new GitHubError(short, { type: FailureType.InvalidInput, status, retryable: false, cause: err });
  }
  // Network errors, timeouts, aborted sockets: worth another try.
  const msg = err instanceof Error ? err.message : String(err);
  return new GitHubError(`${what}: ${msg}`, { type: FailureType.GitHubTransient, retryable: true, cause: err });
}
