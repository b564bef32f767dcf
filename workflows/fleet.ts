/**
 * FleetRoundWorkflow: the control plane's fleet-wide work, once per fleet however many hosts
 * it has, started by the fleet's Temporal Schedule (`fleet/<queue>`, temporal/fleet-schedule.ts;
 * overlap SKIP, so a slow round is never doubled):
 *
 * - GitHub: offline runners named like Ekiden's and owned by no open RunnerWorkflow are
 *   removed (one listing of the scope, not one per host).
 * - Images: the digests the fleet may still start a runner on are read once; then every host
 *   that is up collects its image cache against them, in parallel, on its own task queue. A
 *   host whose worker does not pick the step up within `hostTimeoutMs` is skipped this round
 *   (it is not waited for); when some pool or catalog did not answer, hosts only report.
 *   Each host's result is sent to its HostWorkflow (`ekiden hosts` shows it).
 *
 * - Registry: with the fleet's references complete, the builds Ekiden pushed that no catalog
 *   keeps and nothing runs on are deleted from the registry (activities/images.ts pruneRegistry).
 *
 * Host-local reconciliation (orphan VMs and credentials, lease audits) stays with each
 * HostWorkflow: it needs nothing from the rest of the fleet.
 */
import { getExternalWorkflowHandle, log, patched, proxyActivities } from '@temporalio/workflow';
import type { FleetSharedActivities } from '../activities/fleet.js';
import type { ImageHostActivities, ImageSharedActivities } from '../activities/images.js';
import { ms } from '../core/durations.js';
import { errorMessage } from '../core/failures.js';
import { hostTaskQueue, hostWorkflowId } from '../core/names.js';
import { hostImagesSignal, type FleetRoundInput, type FleetRoundResult } from './api.js';

/** Patch: rounds delete pruned builds from the registry (after the GitHub step, before the hosts). */
export const REGISTRY_RETENTION = 'registry-retention';

export async function FleetRoundWorkflow(input: FleetRoundInput): Promise<FleetRoundResult> {
  const shared = proxyActivities<FleetSharedActivities & ImageSharedActivities>({
    startToCloseTimeout: '5 minutes',
    retry: { initialInterval: '5s', maximumAttempts: 3 },
  });
  const result: FleetRoundResult = { github: { removed: [] }, references: { digests: 0, complete: false }, hosts: [] };

  try {
    result.github = { removed: await shared.reconcileGitHub({ confirmDelayMs: input.confirmDelayMs }) };
  } catch (err) {
    result.github = { error: errorMessage(err) };
    log.warn('fleet round: GitHub reconciliation failed; the next round retries', { message: errorMessage(err) });
  }

  let referenced: string[] | undefined;
  try {
    const refs = await shared.referencedImages();
    result.references = { digests: refs.digests.length, complete: refs.complete };
    if (refs.complete) referenced = refs.digests;
  } catch (err) {
    result.references = { error: errorMessage(err) };
  }

  // Registry retention: builds no catalog keeps and nothing runs on leave the registry.
  if (referenced && patched(REGISTRY_RETENTION)) {
    try {
      result.registry = await shared.pruneRegistry({ referenced });
    } catch (err) {
      result.registry = [{ image: '*', deleted: [], skipped: errorMessage(err) }];
    }
  }

  const hosts = await shared.fleetHosts();
  result.hosts = await Promise.all(
    hosts.map(async ({ id, state }): Promise<FleetRoundResult['hosts'][number]> => {
      if (state !== 'up') return { id, state };
      const onHost = proxyActivities<ImageHostActivities>({
        taskQueue: hostTaskQueue(id),
        scheduleToStartTimeout: ms(input.hostTimeoutMs),
        startToCloseTimeout: '10 minutes',
        retry: { maximumAttempts: 1 },
      });
      try {
        const images = await onHost.collectImages(referenced ? { referenced } : {});
        await getExternalWorkflowHandle(hostWorkflowId(id)).signal(hostImagesSignal, { ...images, at: Date.now() });
        return {
          id,
          state,
          images: { held: images.held.length, bytes: images.bytes, deleted: images.deleted, ...(images.gcSkipped ? { gcSkipped: images.gcSkipped } : {}) },
        };
      } catch (err) {
        return { id, state, error: errorMessage(err) };
      }
    }),
  );
  const deleted = result.hosts.reduce((n, h) => n + (h.images?.deleted.length ?? 0), 0);
  log.info('fleet round done', {
    registryDeleted: (result.registry ?? []).reduce((n, r) => n + r.deleted.length, 0),
    githubRemoved: 'removed' in result.github ? result.github.removed.length : 'failed',
    hosts: result.hosts.length,
    imagesDeleted: deleted,
  });
  return result;
}
