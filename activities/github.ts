/**
 * GitHub-side activities that any worker may run (task queue `ekiden`): they never depend on
 * the host that owned the VM, so a dead host never blocks deregistration.
 */
import { Context, log } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import { FailureType } from '../core/failures.js';
import type { RunnerRegistry } from '../github/runners.js';
import { classified } from './failures.js';

export interface GitHubActivityDeps {
  github: RunnerRegistry;
}

export function createGitHubActivities(deps: GitHubActivityDeps) {
  return {
    /**
     * Remove the runner registration. Unknown runners count as removed. When the runner is
     * running a job: with `allowBusy` report 'busy'; otherwise fail retryably (it will be
     * free once its VM is gone).
     */
    async removeRunner(args: { runnerId?: number; runnerName: string; allowBusy?: boolean }): Promise<'removed' | 'not-found' | 'busy'> {
      const ctx = Context.current();
      const beat = setInterval(() => ctx.heartbeat(), 1_000);
      return classified(async () => {
        let id = args.runnerId;
        if (id === undefined) {
          const found = await deps.github.findRunnerByName(args.runnerName);
          if (!found) return 'not-found';
          id = found.id;
        }
        const result = await deps.github.removeRunner(id);
        if (result === 'busy' && !args.allowBusy) {
          throw ApplicationFailure.retryable(`runner ${args.runnerName} is still running a job`, FailureType.RunnerBusy);
        }
        log.info('runner deregistered', { runner: args.runnerName, runnerId: id, result });
        return result;
      }).finally(() => clearInterval(beat));
    },
  };
}

export type GitHubActivities = ReturnType<typeof createGitHubActivities>;
