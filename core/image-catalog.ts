/**
 * The rules of an image's catalog (ImageCatalogWorkflow `image/<name>`), as pure functions of
 * (state, event) → state: a green build is recorded (newest first) and, when the image promotes
 * automatically, made current; a failed build is recorded as the last failure and changes
 * nothing else (the last good image stays current); promote makes a recorded digest current;
 * rollback goes back to the digest that was current before. What the catalog keeps: the current
 * build and `keep` others, those a rollback can reach first.
 *
 * Deterministic (no clocks: times come in with the events), so the workflow replays it and
 * tests walk it as a table.
 */
import type { CatalogEntry, ImageBuildFailure, ImageBuildRecord, ImageCatalogStatus } from '../workflows/api.js';

export type CatalogEvent =
  | { kind: 'built'; record: ImageBuildRecord; autoPromote: boolean; at: string }
  | { kind: 'failed'; failure: ImageBuildFailure }
  | { kind: 'promote'; digest: string; at: string }
  | { kind: 'rollback'; at: string };

export type CatalogResult = { ok: true; state: ImageCatalogStatus; promoted?: string } | { ok: false; reason: string };

export function emptyCatalog(image: string, keep: number): ImageCatalogStatus {
  return { image, previous: [], builds: [], keep, consecutiveFailures: 0 };
}

const DIGEST = /^sha256:[0-9a-f]{64}$/;

/** Why `event` cannot apply to `state` (the update validators say it before anything changes). */
export function catalogRefusal(state: ImageCatalogStatus, event: CatalogEvent): string | undefined {
  switch (event.kind) {
    case 'promote':
      if (!DIGEST.test(event.digest)) return `"${event.digest}" is not a digest; write sha256: and 64 hex digits`;
      if (!state.builds.some((b) => b.digest === event.digest)) {
        return `image ${state.image} has no build ${event.digest}; \`ekiden image list\` shows its builds`;
      }
      return undefined;
    case 'rollback':
      if (state.current === undefined) return `image ${state.image} has no current build to roll back from`;
      if (!state.previous.some((d) => state.builds.some((b) => b.digest === d))) return `image ${state.image} has no earlier build to roll back to`;
      return undefined;
    case 'built':
      if (!DIGEST.test(event.record.digest)) return `build ${event.record.buildId}: "${event.record.digest}" is not a digest`;
      return undefined;
    case 'failed':
      return undefined;
  }
}

function makeCurrent(state: ImageCatalogStatus, digest: string, at: string, rollingBack: boolean): ImageCatalogStatus {
  if (state.current === digest) return state;
  const previous = rollingBack
    ? state.previous.slice(state.previous.indexOf(digest) + 1)
    : [...(state.current ? [state.current] : []), ...state.previous.filter((d) => d !== digest)];
  const builds = state.builds.map((b) => (b.digest === digest ? { ...b, promotedAt: at } : b));
  return { ...state, current: digest, previous, builds };
}

/**
 * The builds kept: the current one and `keep` others — first what a rollback can reach
 * (newest first), then the newest of the rest. `previous` keeps only digests still held.
 */
export function prune(state: ImageCatalogStatus): ImageCatalogStatus {
  const held = new Set(state.builds.map((b) => b.digest));
  const others = state.builds.filter((b) => b.digest !== state.current);
  const chosen = new Set(state.previous.filter((d) => held.has(d) && d !== state.current).slice(0, state.keep));
  for (const b of others) {
    if (chosen.size >= state.keep) break;
    chosen.add(b.digest);
  }
  const builds = state.builds.filter((b) => b.digest === state.current || chosen.has(b.digest));
  const previous = state.previous.filter((d) => chosen.has(d));
  return { ...state, previous, builds };
}

/** Digests the catalog holds (what hosts' caches and the registry must keep). */
export function keptDigests(state: ImageCatalogStatus): string[] {
  return state.builds.map((b) => b.digest);
}

export function applyCatalog(state: ImageCatalogStatus, event: CatalogEvent): CatalogResult {
  const reason = catalogRefusal(state, event);
  if (reason) return { ok: false, reason };
  switch (event.kind) {
    case 'built': {
      const entry: CatalogEntry = { ...event.record };
      // The same digest built again (a rebuild with identical inputs) is one entry, moved to the front.
      const builds = [entry, ...state.builds.filter((b) => b.digest !== entry.digest)];
      let next: ImageCatalogStatus = { ...state, builds, consecutiveFailures: 0 };
      delete next.failingSince;
      let promoted: string | undefined;
      if (event.autoPromote && state.current !== entry.digest) {
        next = makeCurrent(next, entry.digest, event.at, false);
        promoted = entry.digest;
      }
      return { ok: true, state: prune(next), ...(promoted ? { promoted } : {}) };
    }
    case 'failed':
      return {
        ok: true,
        state: { ...state, lastFailure: event.failure, consecutiveFailures: state.consecutiveFailures + 1, failingSince: state.failingSince ?? event.failure.at },
      };
    case 'promote': {
      if (state.current === event.digest) return { ok: true, state };
      return { ok: true, state: prune(makeCurrent(state, event.digest, event.at, false)), promoted: event.digest };
    }
    case 'rollback': {
      const target = state.previous.find((d) => state.builds.some((b) => b.digest === d))!;
      return { ok: true, state: prune(makeCurrent(state, target, event.at, true)), promoted: target };
    }
  }
}
