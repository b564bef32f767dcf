/**
 * Which pools are open and what they run: Temporal visibility lists the running
 * PoolWorkflows, `poolStatusQuery` tells each one's labels and headroom. Cached for a few
 * seconds so a burst of webhooks costs one round of queries. Also the pure matching rules:
 * a job fits a pool whose labels include every label of the job (case-insensitive, as
 * GitHub matches), and the pool with the most free headroom wins, ties by name.
 */
import type { Client } from '@temporalio/client';
import { poolWorkflowId } from '../core/names.js';
import { poolStatusQuery, type PoolStatus } from '../workflows/api.js';
import type { WebhookLogger } from './log.js';
import { errorMessage } from '../core/failures.js';

export const POOL_LIST_QUERY = "WorkflowType = 'PoolWorkflow' AND ExecutionStatus = 'Running'";
const POOL_ID_PREFIX = poolWorkflowId('');

export interface PoolInfo {
  name: string;
  workflowId: string;
  labels: string[];
  max: number;
  /** Runners starting, idle or busy. */
  active: number;
  draining: boolean;
}

/** Open pools, and the ones listed that never answered their status query (workflow ids). */
export interface PoolListing {
  pools: PoolInfo[];
  unanswered: string[];
}

/**
 * No answering pool fits the job, and some listed pools never answered: the job may be theirs,
 * so the delivery is not settled (503, redelivered) rather than "no pool matches" (202, done).
 */
export class PoolsUnansweredError extends Error {
  override readonly name = 'PoolsUnansweredError';
  constructor(readonly workflowIds: readonly string[]) {
    const names = workflowIds.map((id) => id.slice(POOL_ID_PREFIX.length)).join(', ');
    super(workflowIds.length === 1 ? `pool ${names} did not answer its status query; the job may be its` : `pools ${names} did not answer their status query; the job may be theirs`);
  }
}

export function headroom(pool: PoolInfo): number {
  return pool.max - pool.active;
}

/** Pools whose labels include every label of the job. A job without labels fits nowhere. */
export function matchingPools(pools: readonly PoolInfo[], jobLabels: readonly string[]): PoolInfo[] {
  const wanted = jobLabels.map((l) => l.toLowerCase());
  if (wanted.length === 0) return [];
  return pools.filter((p) => {
    const have = new Set(p.labels.map((l) => l.toLowerCase()));
    return wanted.every((l) => have.has(l));
  });
}

/** The pool with the most free headroom; ties go to the name that sorts first. */
export function pickPool(pools: readonly PoolInfo[]): PoolInfo | undefined {
  let best: PoolInfo | undefined;
  for (const p of pools) {
    if (!best || headroom(p) > headroom(best) || (headroom(p) === headroom(best) && p.name < best.name)) best = p;
  }
  return best;
}

export function poolInfoFromStatus(workflowId: string, status: PoolStatus): PoolInfo {
  const counts = status.counts ?? { starting: 0, idle: 0, busy: 0, cleaning: 0 };
  return {
    name: status.pool ?? status.config?.name ?? workflowId.slice(POOL_ID_PREFIX.length),
    workflowId,
    labels: Array.isArray(status.config?.labels) ? status.config.labels.filter((l): l is string => typeof l === 'string') : [],
    max: typeof status.config?.max === 'number' ? status.config.max : 0,
    active: (counts.starting ?? 0) + (counts.idle ?? 0) + (counts.busy ?? 0),
    draining: status.draining === true,
  };
}

export interface PoolDirectoryOptions {
  client: Client;
  /** How long a listing is reused. Default 5000. */
  cacheMs?: number;
  /** Per-pool status query budget; less than a delivery's, so one silent pool does not sink it. Default 2000. */
  queryTimeoutMs?: number;
  logger: WebhookLogger;
  now?: () => number;
}

export class PoolDirectory {
  private readonly client: Client;
  private readonly cacheMs: number;
  private readonly queryTimeoutMs: number;
  private readonly logger: WebhookLogger;
  private readonly now: () => number;
  private cached: { at: number; listing: PoolListing } | undefined;
  private inflight: Promise<PoolListing> | undefined;
  /** Last answer of each pool, used when it cannot answer a query right now. */
  private readonly lastKnown = new Map<string, PoolInfo>();

  constructor(opts: PoolDirectoryOptions) {
    this.client = opts.client;
    this.cacheMs = opts.cacheMs ?? 5000;
    this.queryTimeoutMs = opts.queryTimeoutMs ?? 2000;
    this.logger = opts.logger;
    this.now = opts.now ?? Date.now;
  }

  /** Age of the cached listing in ms (Infinity when there is none). */
  get age(): number {
    return this.cached ? this.now() - this.cached.at : Infinity;
  }

  /** Open pools; from the cache while it is younger than `maxAgeMs` (default: the cache time; 0: always fresh). */
  async pools(maxAgeMs = this.cacheMs): Promise<PoolInfo[]> {
    return (await this.listing(maxAgeMs)).pools;
  }

  /** Open pools and the pools listed that never answered, as `pools()` caches them. */
  async listing(maxAgeMs = this.cacheMs): Promise<PoolListing> {
    if (this.cached && this.now() - this.cached.at < maxAgeMs) return this.cached.listing;
    this.inflight ??= this.refresh().finally(() => {
      this.inflight = undefined;
    });
    return this.inflight;
  }

  invalidate(): void {
    this.cached = undefined;
  }

  /**
   * Counts a job just routed to the pool against its headroom in the cached listing, so a
   * burst of queued jobs spreads over the pools before the next refresh tells the truth.
   */
  noteRouted(workflowId: string): void {
    const pool = this.cached?.listing.pools.find((p) => p.workflowId === workflowId);
    if (pool) pool.active++;
  }

  private async refresh(): Promise<PoolListing> {
    const at = this.now();
    const ids: string[] = [];
    for await (const wf of this.client.workflow.list({ query: POOL_LIST_QUERY })) {
      if (wf.workflowId.startsWith(POOL_ID_PREFIX) && !ids.includes(wf.workflowId)) ids.push(wf.workflowId);
    }
    const answers = await Promise.all(ids.map((id) => this.describe(id)));
    const pools = answers.filter((p): p is PoolInfo => p !== undefined).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    const unanswered = ids.filter((_id, i) => answers[i] === undefined);
    for (const id of [...this.lastKnown.keys()]) if (!ids.includes(id)) this.lastKnown.delete(id);
    const listing = { pools, unanswered };
    this.cached = { at, listing };
    return listing;
  }

  private async describe(workflowId: string): Promise<PoolInfo | undefined> {
    try {
      const status = await this.client.withDeadline(this.now() + this.queryTimeoutMs, () =>
        this.client.workflow.getHandle(workflowId).query(poolStatusQuery),
      );
      const info = poolInfoFromStatus(workflowId, status);
      this.lastKnown.set(workflowId, info);
      return info;
    } catch (err) {
      const previous = this.lastKnown.get(workflowId);
      this.logger.warn('pool did not answer its status query', {
        workflowId,
        reason: errorMessage(err)?.split('\n')[0],
        using: previous ? 'last known status' : 'nothing (skipped)',
      });
      return previous;
    }
  }
}
