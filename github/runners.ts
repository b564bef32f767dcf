/**
 * Runner registrations on GitHub: JIT configs, registration tokens, lookup and removal.
 * Every operation is safe to repeat: a retried JIT request that hits 409 is resolved without
 * a second runner, and removing a runner that is already gone succeeds.
 */
import type { Octokit } from '@octokit/rest';
import { FailureType } from '../core/failures.js';
import { parseRunnerName } from '../core/names.js';
import { classifyGitHubError, GitHubError, scopePath, type GitHubRunner, type GitHubScope } from './client.js';

export interface JitConfig {
  runnerId: number;
  runnerName: string;
  /** Secret: base64 JIT config. Never log it, never return it to a workflow. */
  encodedJitConfig: string;
}

export type RemoveResult = 'removed' | 'not-found' | 'busy';

/** Why an existing registration named `name` is not a lost earlier attempt of ours (undefined when it is). */
export function leftoverRefusal(r: Pick<GitHubRunner, 'name' | 'status' | 'busy'>, name: string): string | undefined {
  if (r.name !== name || !parseRunnerName(r.name)) return 'its name is not an Ekiden runner name';
  if (r.busy) return 'is running a job';
  if (r.status !== 'offline') return 'is online';
  return undefined;
}

export class RunnerRegistry {
  private readonly prefix: string;

  constructor(
    private readonly octokit: Octokit,
    private readonly scope: GitHubScope,
  ) {
    this.prefix = scopePath(scope);
  }

  async createJitConfig(args: { name: string; labels: string[]; runnerGroupId: number; workFolder?: string }): Promise<JitConfig> {
    const request = () =>
      this.octokit.request(`POST ${this.prefix}/actions/runners/generate-jitconfig`, {
        name: args.name,
        labels: args.labels,
        runner_group_id: args.runnerGroupId,
        ...(args.workFolder ? { work_folder: args.workFolder } : {}),
      });
    try {
      const res = await request();
      const data = res.data as { runner: GitHubRunner; encoded_jit_config: string };
      return { runnerId: data.runner.id, runnerName: data.runner.name, encodedJitConfig: data.encoded_jit_config };
    } catch (err) {
      const e = classifyGitHubError(err, 'generate JIT config');
      if (e.type !== FailureType.GitHubConflict) throw e;
    }
    // 409: a runner with this name exists. Names carry a token unique to one workflow run, so an
    // Ekiden-named runner that is offline and idle was made by an earlier attempt whose response
    // was lost, and nobody holds its config: remove it and ask again. One that is online or busy
    // is somebody's live runner (or a name not ours): never removed.
    const existing = await this.findRunnerByName(args.name);
    if (existing) {
      const refusal = leftoverRefusal(existing, args.name);
      if (refusal) {
        throw new GitHubError(`generate JIT config: runner ${args.name} already exists and ${refusal}; it is not a leftover of this runner, so it is left alone`, {
          type: FailureType.GitHubConflict,
          status: 409,
          retryable: false,
        });
      }
      const removed = await this.removeRunner(existing.id);
      if (removed === 'busy') {
        throw new GitHubError(`generate JIT config: runner ${args.name} exists and is running a job`, {
          type: FailureType.RunnerBusy,
          retryable: true,
        });
      }
    }
    try {
      const res = await request();
      const data = res.data as { runner: GitHubRunner; encoded_jit_config: string };
      return { runnerId: data.runner.id, runnerName: data.runner.name, encodedJitConfig: data.encoded_jit_config };
    } catch (err) {
      throw classifyGitHubError(err, 'generate JIT config');
    }
  }

  /** Secret: a registration token for `config.sh` (servers without JIT). */
  async createRegistrationToken(): Promise<{ token: string; expiresAt: string }> {
    try {
      const res = await this.octokit.request(`POST ${this.prefix}/actions/runners/registration-token`);
      const data = res.data as { token: string; expires_at: string };
      return { token: data.token, expiresAt: data.expires_at };
    } catch (err) {
      throw classifyGitHubError(err, 'create registration token');
    }
  }

  async findRunnerByName(name: string): Promise<GitHubRunner | undefined> {
    try {
      const res = await this.octokit.request(`GET ${this.prefix}/actions/runners`, { name, per_page: 100 });
      const data = res.data as { runners: GitHubRunner[] };
      return data.runners.find((r) => r.name === name);
    } catch (err) {
      throw classifyGitHubError(err, 'find runner');
    }
  }

  async getRunner(id: number): Promise<GitHubRunner | undefined> {
    try {
      const res = await this.octokit.request(`GET ${this.prefix}/actions/runners/{runner_id}`, { runner_id: id });
      return res.data as GitHubRunner;
    } catch (err) {
      const e = classifyGitHubError(err, 'get runner');
      if (e.status === 404) return undefined;
      throw e;
    }
  }

  /** All runners in scope, following `Link` pagination. */
  async listRunners(): Promise<GitHubRunner[]> {
    try {
      // paginate follows `Link: rel="next"` and unwraps `{ total_count, runners }` pages.
      const paginate = this.octokit.paginate as unknown as (route: string, params: object) => Promise<GitHubRunner[]>;
      return await paginate(`GET ${this.prefix}/actions/runners`, { per_page: 100 });
    } catch (err) {
      throw classifyGitHubError(err, 'list runners');
    }
  }

  /** Remove a runner. 404 counts as done; 422 (running a job) is reported as 'busy'. */
  async removeRunner(id: number): Promise<RemoveResult> {
    try {
      await this.octokit.request(`DELETE ${this.prefix}/actions/runners/{runner_id}`, { runner_id: id });
      return 'removed';
    } catch (err) {
      const e = classifyGitHubError(err, 'remove runner');
      if (e.status === 404) return 'not-found';
      if (e.status === 422) return 'busy';
      throw e;
    }
  }
}
