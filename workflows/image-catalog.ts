/**
 * ImageCatalogWorkflow `image/<name>`: the builds of one image and which one is current.
 *
 * - A green build reports itself (`imageBuilt`, by signal-with-start from its recording step)
 *   and is recorded; an image that promotes automatically makes it current at once.
 * - A failed build (`imageBuildFailed`) is recorded as the last failure; the current image
 *   stays what it was, and status says since when builds fail.
 * - `promoteImage` / `rollbackImage` (updates, validated by the same rules before anything
 *   changes) move the current digest; the answer is the catalog after the move.
 * - Long-lived: continue-as-new carries the state once the history grows.
 *
 * The rules are core/image-catalog.ts; this module only wires them to messages.
 */
import { allHandlersFinished, condition, continueAsNew, setHandler, workflowInfo } from '@temporalio/workflow';
import { applyCatalog, catalogRefusal, emptyCatalog, type CatalogEvent } from '../core/image-catalog.js';
import {
  imageBuildFailedSignal,
  imageBuiltSignal,
  imageStatusQuery,
  promoteImageUpdate,
  rollbackImageUpdate,
  type ImageCatalogInput,
  type ImageCatalogStatus,
} from './api.js';

/** Continue-as-new after this many events (each message is a handful). */
const MAX_HISTORY_EVENTS = 2_000;

export async function ImageCatalogWorkflow(input: ImageCatalogInput): Promise<ImageCatalogStatus> {
  let state: ImageCatalogStatus = { ...(input.state ?? emptyCatalog(input.image, input.keep)), keep: input.keep };
  const now = () => new Date(Date.now()).toISOString();

  const apply = (event: CatalogEvent): ImageCatalogStatus => {
    const result = applyCatalog(state, event);
    if (!result.ok) throw new Error(result.reason);
    state = result.state;
    return state;
  };

  setHandler(imageStatusQuery, () => state);
  setHandler(imageBuiltSignal, (record) => {
    const result = applyCatalog(state, { kind: 'built', record, autoPromote: input.promote === 'auto', at: now() });
    // A malformed record changes nothing (the build's own status shows it).
    if (result.ok) state = result.state;
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

  await condition(() => workflowInfo().historyLength > MAX_HISTORY_EVENTS || workflowInfo().continueAsNewSuggested);
  await condition(allHandlersFinished);
  return await continueAsNew<typeof ImageCatalogWorkflow>({ ...input, state });
}
