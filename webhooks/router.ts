/**
 * Acts on one `workflow_job` delivery: a queued job goes to the best matching open pool
 * (`jobQueuedSignal`); progress (`in_progress`, `completed`) goes to the pool that got the
 * job, or to every pool it could have gone to (`jobProgressedSignal`, idempotent on the pool
 * side), and to the Ekiden runner that took it (`jobAssignedSignal`).
 */
import { WorkflowNotFoundError, type Client } from '@temporalio/client';
import { parseRunnerName, poolWorkflowId } from '../core/names.js';
import { SA_RUNNER } from '../core/search-attributes.js';
import { jobAssignedSignal, jobProgressedSignal, jobQueuedSignal } from '../workflows/api.js';
import { LruMap } from './lru.js';
import type { WebhookLogger } from './log.js';
import type { WorkflowJobFacts } from './payload.js';
import { matchingPools, pickPool, PoolsUnansweredError, type PoolDirectory, type PoolInfo } from './pools.js';

export interface RouteResult {
  /** 200: acted on; 202: accepted, nothing to do. */
  status: 200 | 202;
  body: {
    message: string;
    action: WorkflowJobFacts['action'];
    jobId: string;
    /** Pools signalled. */
    pools: string[];
    /** RunnerWorkflow ids signalled with the job. */
    runners: string[];
  };
}

export interface JobRouterOptions {
  client: Client;
  directory: PoolDirectory;
  logger: WebhookLogger;
  /** Job ids remembered with the pool that got them. Default 10000. */
  jobMemory?: number;
  /** A no-match refreshes the pool listing when it is older than this. Default 1000. */
  missRefreshMs?: number;
}

export class JobRouter {
  private readonly client: Client;
  private readonly directory: PoolDirectory;
  private readonly logger: WebhookLogger;
  private readonly missRefreshMs: number;
  /** Job id → workflow ids of the pools that were told about it. */
  private readonly jobPools: LruMap<string, string[]>;

  constructor(opts: JobRouterOptions) {
    this.client = opts.client;
    this.directory = opts.directory;
    this.logger = opts.logger;
    this.missRefreshMs = opts.missRefreshMs ?? 1000;
    this.jobPools = new LruMap(opts.jobMemory ?? 10_000);
  }

  async route(job: WorkflowJobFacts): Promise<RouteResult> {
    switch (job.action) {
      case 'queued':
        return this.queued(job);
      case 'in_progress':
      case 'completed':
        return this.progress(job, job.action);
      case 'waiting':
        return this.result(202, job, 'waiting jobs need no runner yet; ignored', [], []);
    }
  }

  private result(status: 200 | 202, job: WorkflowJobFacts, message: string, pools: string[], runners: string[]): RouteResult {
    return { status, body: { message, action: job.action, jobId: job.jobId, pools, runners } };
  }

  /** Open pools and those whose labels fit the job; one fresh look when the cached listing has none. */
  private async candidates(labels: string[]): Promise<{ all: PoolInfo[]; fits: PoolInfo[]; unanswered: string[] }> {
    let listing = await this.directory.listing();
    let fits = matchingPools(listing.pools, labels);
    if (fits.length === 0 && this.directory.age > this.missRefreshMs) {
      listing = await this.directory.listing(this.missRefreshMs);
      fits = matchingPools(listing.pools, labels);
    }
    return { all: listing.pools, fits, unanswered: listing.unanswered };
  }

  private async queued(job: WorkflowJobFacts): Promise<RouteResult> {
    const { fits, unanswered } = await this.candidates(job.labels);
    let open = fits.filter((p) => !p.draining);
    for (let attempt = 0; attempt < 3; attempt++) {
      const pool = pickPool(open);
      if (!pool) break;
      try {
        await this.client.workflow.getHandle(pool.workflowId).signal(jobQueuedSignal, { jobId: job.jobId, labels: job.labels });
      } catch (err) {
        if (!(err instanceof WorkflowNotFoundError)) throw err;
        // The pool closed since the listing: forget the listing, try the next best.
        this.directory.invalidate();
        open = open.filter((p) => p.workflowId !== pool.workflowId);
        continue;
      }
      this.jobPools.set(job.jobId, [pool.workflowId]);
      this.directory.noteRouted(pool.workflowId);
      this.logger.info('job routed', { jobId: job.jobId, pool: pool.name, labels: job.labels });
      return this.result(200, job, `job ${job.jobId} queued on pool ${pool.name}`, [pool.name], []);
    }
    // Not "no pool matches" while a pool that might is silent: that answer would be final.
    if (unanswered.length > 0) throw new PoolsUnansweredError(unanswered);
    this.logger.info('no pool matches job', { jobId: job.jobId, labels: job.labels });
    const draining = fits.length > 0 && fits.every((p) => p.draining) ? ` (draining: ${fits.map((p) => p.name).join(', ')})` : '';
    return this.result(202, job, `no open pool matches labels [${job.labels.join(', ')}]${draining}; nothing started`, [], []);
  }

  private async progress(job: WorkflowJobFacts, action: 'in_progress' | 'completed'): Promise<RouteResult> {
    const runner = job.runnerName === undefined ? undefined : parseRunnerName(job.runnerName);
    let targets = this.jobPools.get(job.jobId);
    if (!targets) {
      // Unknown job (the receiver restarted, or another replica got `queued`): every pool it
      // could have gone to, and the pool of the Ekiden runner that took it.
      const { all, fits } = await this.candidates(job.labels);
      targets = fits.map((p) => p.workflowId);
      const own = runner ? poolWorkflowId(runner.pool) : undefined;
      if (own !== undefined && !targets.includes(own) && all.some((p) => p.workflowId === own)) targets.push(own);
    }
    const signal = { jobId: job.jobId, action, ...(job.runnerName !== undefined ? { runnerName: job.runnerName } : {}) };
    const pools: string[] = [];
    for (const workflowId of targets) {
      try {
        await this.client.workflow.getHandle(workflowId).signal(jobProgressedSignal, signal);
        pools.push(workflowId.slice(poolWorkflowId('').length));
      } catch (err) {
        if (!(err instanceof WorkflowNotFoundError)) throw err;
      }
    }
    const runners = runner && job.runnerName !== undefined ? await this.tellRunner(job.runnerName, job.jobId) : [];
    if (action === 'completed') this.jobPools.delete(job.jobId);
    this.logger.info('job progress', { jobId: job.jobId, action, pools, runners });
    if (pools.length === 0 && runners.length === 0) {
      return this.result(202, job, `no open pool or Ekiden runner knows job ${job.jobId}; nothing signalled`, [], []);
    }
    return this.result(200, job, `job ${job.jobId} ${action}`, pools, runners);
  }

  /** Signals the running RunnerWorkflow(s) registered under this GitHub runner name. */
  private async tellRunner(runnerName: string, jobId: string): Promise<string[]> {
    // parseRunnerName admitted only [a-z0-9-]: safe inside the quoted literal.
    const query = `${SA_RUNNER.name} = '${runnerName}' AND ExecutionStatus = 'Running'`;
    const told: string[] = [];
    for await (const wf of this.client.workflow.list({ query })) {
      try {
        await this.client.workflow.getHandle(wf.workflowId, wf.runId).signal(jobAssignedSignal, { jobId });
        told.push(wf.workflowId);
      } catch (err) {
        if (!(err instanceof WorkflowNotFoundError)) throw err;
      }
    }
    return told;
  }
}
