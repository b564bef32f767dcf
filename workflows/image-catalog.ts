/**
 * ImageCatalogWorkflow `image/<name>`: the builds of one image and which one is current.
 *
 * - A green build reports itself (`imageBuilt`, by signal-with-start from its recording step)
 *   and is recorded; an image that promotes automatically makes it current at once.
 * - A failed build (`imageBuildFailed`) is recorded as the last failure; the current image
 *   stays what it was, and status says since when builds fail.
 * - `promoteImage` / `rollbackImage` (updates, validated by the same rules before anything
 *   changes) move the current digest; the answer is the catalog after the move.
 * - Every move of the current digest is rolled out: the hosts of the pools following the image
 *   (`image: catalog:NAME`) prefetch it, a few at a time, then those pools are told
 *   (`imagePromoted`) and recycle their idle runners onto it; busy runners finish on the build
 *   they started with. A host that cannot prefetch is reported and does not hold the others
 *   up (its runners pull when they start). A newer promotion supersedes one still rolling out.
 * - Long-lived: continue-as-new carries the state (and a rollout not yet done).
 *
 * The rules are core/image-catalog.ts; this module wires them to messages and activities.
 */
import {
  allHandlersFinished,
  condition,
  continueAsNew,
  getExternalWorkflowHandle,
  log,
  proxyActivities,
  setHandler,
  workflowInfo,
} from '@temporalio/workflow';
import type { ImageHostActivities, ImageSharedActivities } from '../activities/images.js';
import { applyCatalog, catalogRefusal, emptyCatalog, keptDigests, type CatalogEvent } from '../core/image-catalog.js';
import { errorMessage, failureMessage } from '../core/failures.js';
import { hostTaskQueue } from '../core/names.js';
import {
  imageBuildFailedSignal,
  imageBuiltSignal,
  imagePromotedSignal,
  imageStatusQuery,
  promoteImageUpdate,
  rollbackImageUpdate,
  type ImageCatalogInput,
  type ImageCatalogStatus,
  type ImageRollout,
} from './api.js';

/** Continue-as-new after this many events. */
const MAX_HISTORY_EVENTS = 2_000;
/** Hosts prefetching a new build at once. */
const PREFETCH_CONCURRENCY = 3;

/** `registry/repository@sha256:…` → its parts. */
export function splitImageRef(ref: string): { registry: string; repository: string; digest: string } | undefined {
  const m = /^([^/@]+)\/([^@]+)@(sha256:[0-9a-f]{64})$/.exec(ref);
  return m ? { registry: m[1]!, repository: m[2]!, digest: m[3]! } : undefined;
}

export async function ImageCatalogWorkflow(input: ImageCatalogInput): Promise<ImageCatalogStatus> {
  let state: ImageCatalogStatus = { ...(input.state ?? emptyCatalog(input.image, input.keep)), keep: input.keep };
  let pending: string | undefined = input.pendingRollout;
  const now = () => new Date(Date.now()).toISOString();

  const shared = proxyActivities<ImageSharedActivities>({
    startToCloseTimeout: '2 minutes',
    retry: { initialInterval: '1s', maximumInterval: '30s', maximumAttempts: 10 },
  });

  const apply = (event: CatalogEvent): ImageCatalogStatus => {
    const result = applyCatalog(state, event);
    if (!result.ok) throw new Error(result.reason);
    state = result.state;
    if (result.promoted) pending = result.promoted;
    return state;
  };

  setHandler(imageStatusQuery, () => state);
  setHandler(imageBuiltSignal, (record) => {
    // A malformed record changes nothing (the build's own status shows it).
    try {
      apply({ kind: 'built', record, autoPromote: input.promote === 'auto', at: now() });
    } catch (err) {
      log.warn('build record refused', { image: input.image, message: errorMessage(err) });
    }
  });
  setHandler(imageBuildFailedSignal, (failure) => {
    apply({ kind: 'failed', failure });
  });
  setHandler(promoteImageUpdate, ({ digest }) => apply({ kind: 'promote', digest, at: now() }), {
    validator: ({ digest }) => {
      const reason = catalogRefusal(state, { kind: 'promote', digest, at: '' });
      if (reason) throw new Error(reason);
    },
  });
  setHandler(rollbackImageUpdate, () => apply({ kind: 'rollback', at: now() }), {
    validator: () => {
      const reason = catalogRefusal(state, { kind: 'rollback', at: '' });
      if (reason) throw new Error(reason);
    },
  });

  /** Prefetch `digest` on the following pools' hosts, then tell the pools. */
  const rollOut = async (digest: string) => {
    const build = state.builds.find((b) => b.digest === digest);
    const parts = build ? splitImageRef(build.ref) : undefined;
    if (!build || !parts) return;
    const rollout: ImageRollout = { digest, startedAt: now(), state: 'prefetching', hostsReady: [], hostsFailed: [], pools: [] };
    state = { ...state, rollout };
    const pools = await shared.imageFollowers({ image: input.image });
    rollout.pools = pools.map((p) => p.workflowId);
    const hosts = [...new Set(pools.flatMap((p) => p.hosts))].sort();
    const queue = [...hosts];
    const prefetchOne = async () => {
      for (let host = queue.shift(); host !== undefined; host = queue.shift()) {
        const onHost = proxyActivities<ImageHostActivities>({
          taskQueue: hostTaskQueue(host),
          scheduleToStartTimeout: '10 minutes',
          startToCloseTimeout: '6 hours',
          heartbeatTimeout: '1 minute',
          retry: { initialInterval: '5s', backoffCoefficient: 2, maximumInterval: '2 minutes', maximumAttempts: 5 },
        });
        try {
          await onHost.prefetchImage({ ...parts, referenced: keptDigests(state), inUse: [] });
          rollout.hostsReady.push(host);
        } catch (err) {
          rollout.hostsFailed.push({ host, message: failureMessage(err) });
          log.warn('host could not prefetch the image; its runners pull it when they start', { image: input.image, host, message: failureMessage(err) });
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(PREFETCH_CONCURRENCY, hosts.length) }, prefetchOne));
    // A newer promotion came in meanwhile: that one is rolled out instead.
    if (pending !== undefined && pending !== digest) return;
    rollout.state = 'notifying';
    for (const pool of pools) {
      try {
        await getExternalWorkflowHandle(pool.workflowId).signal(imagePromotedSignal, { image: input.image, ref: build.ref, digest });
      } catch (err) {
        log.warn('pool could not be told; it asks the catalog when it starts runners', { pool: pool.workflowId, message: errorMessage(err) });
      }
    }
    rollout.state = 'done';
  };

  const mustContinue = () => workflowInfo().historyLength > MAX_HISTORY_EVENTS || workflowInfo().continueAsNewSuggested;
  for (;;) {
    await condition(() => pending !== undefined || mustContinue());
    if (pending !== undefined) {
      const digest = pending;
      pending = undefined;
      await rollOut(digest);
      continue;
    }
    await condition(allHandlersFinished);
    return await continueAsNew<typeof ImageCatalogWorkflow>({ ...input, state, ...(pending ? { pendingRollout: pending } : {}) });
  }
}
