/**
 * The catalog's rules (core/image-catalog.ts) as tables: what a green build, a failed build,
 * a promotion and a rollback do to the catalog, what each refuses, and what is kept.
 */
import { describe, expect, it } from 'vitest';
import { applyCatalog, catalogRefusal, emptyCatalog, keptDigests, type CatalogEvent } from '../../core/image-catalog.js';
import type { ImageBuildRecord, ImageCatalogStatus } from '../../workflows/api.js';

const digest = (n: number) => `sha256:${n.toString(16).padStart(64, '0')}`;
const record = (n: number): ImageBuildRecord => ({
  image: 'linux',
  buildId: `image-build/linux/b${n}`,
  digest: digest(n),
  ref: `registry.test:5000/ekiden/linux@${digest(n)}`,
  bytes: 1000 + n,
  runnerVersion: '2.336.0',
  baseDigest: digest(999),
  templateHash: digest(998),
  builtAt: `2026-12-0${n}T00:00:00.000Z`,
  host: 'build-1',
  durationMs: 60_000,
});
const AT = '2026-12-02T12:00:00.000Z';

/** Applies events in order, failing the test on a refusal. */
function run(events: CatalogEvent[], keep = 3): ImageCatalogStatus {
  let state = emptyCatalog('linux', keep);
  for (const e of events) {
    const r = applyCatalog(state, e);
    if (!r.ok) throw new Error(r.reason);
    state = r.state;
  }
  return state;
}
const built = (n: number, autoPromote = true): CatalogEvent => ({ kind: 'built', record: record(n), autoPromote, at: AT });

describe('builds', () => {
  it.each([
    ['auto promote makes each green build current', [built(1), built(2)], digest(2), [digest(1)]],
    ['manual promote records without moving current', [built(1, false), built(2, false)], undefined, []],
    ['manual build after an auto one leaves the first current', [built(1), built(2, false)], digest(1), []],
    ['the same digest built again is one entry, still current', [built(1), built(1)], digest(1), []],
  ] as const)('%s', (_why, events, current, previous) => {
    const s = run([...events]);
    expect(s.current).toBe(current);
    expect(s.previous).toEqual(previous);
  });

  it('a failed build changes nothing but the failure and its count', () => {
    const good = run([built(1)]);
    const failure = { buildId: 'image-build/linux/b2', at: AT, message: 'packer build failed' };
    const r1 = applyCatalog(good, { kind: 'failed', failure });
    const r2 = r1.ok ? applyCatalog(r1.state, { kind: 'failed', failure: { ...failure, at: '2026-12-03T00:00:00.000Z' } }) : r1;
    expect(r2.ok).toBe(true);
    if (!r2.ok) return;
    expect(r2.state.current).toBe(digest(1));
    expect(r2.state.builds).toEqual(good.builds);
    expect(r2.state.consecutiveFailures).toBe(2);
    expect(r2.state.failingSince).toBe(AT);
    // The next green build clears the streak.
    const r3 = applyCatalog(r2.state, built(3));
    expect(r3.ok && r3.state.consecutiveFailures).toBe(0);
    expect(r3.ok && r3.state.failingSince).toBeUndefined();
    expect(r3.ok && r3.state.lastFailure).toEqual({ ...failure, at: '2026-12-03T00:00:00.000Z' });
  });

  it('a record whose digest is malformed is refused', () => {
    expect(applyCatalog(emptyCatalog('linux', 3), { kind: 'built', record: { ...record(1), digest: 'latest' }, autoPromote: true, at: AT })).toEqual({
      ok: false,
      reason: 'build image-build/linux/b1: "latest" is not a digest',
    });
  });
});

describe('promote and rollback', () => {
  it.each([
    ['promote a recorded build', [built(1, false), built(2, false)], { kind: 'promote', digest: digest(1), at: AT }, digest(1), [], digest(1)],
    ['promote the current build: nothing moves', [built(1)], { kind: 'promote', digest: digest(1), at: AT }, digest(1), [], undefined],
    ['promote an older build', [built(1), built(2)], { kind: 'promote', digest: digest(1), at: AT }, digest(1), [digest(2)], digest(1)],
    ['rollback goes to the previous current', [built(1), built(2), built(3)], { kind: 'rollback', at: AT }, digest(2), [digest(1)], digest(2)],
    ['rollback twice walks back', [built(1), built(2), built(3), { kind: 'rollback', at: AT }], { kind: 'rollback', at: AT }, digest(1), [], digest(1)],
  ] as const)('%s', (_why, before, event, current, previous, promoted) => {
    const state = run([...before] as CatalogEvent[]);
    const r = applyCatalog(state, event as CatalogEvent);
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.state.current).toBe(current);
    expect(r.state.previous).toEqual(previous);
    expect(r.promoted).toBe(promoted);
    if (promoted) expect(r.state.builds.find((b) => b.digest === promoted)?.promotedAt).toBe(AT);
  });

  it.each([
    ['promote a digest the catalog does not hold', [built(1)], { kind: 'promote', digest: digest(7), at: AT }, `image linux has no build ${digest(7)}; \`ekiden image list\` shows its builds`],
    ['promote something that is not a digest', [built(1)], { kind: 'promote', digest: 'latest', at: AT }, '"latest" is not a digest; write sha256: and 64 hex digits'],
    ['rollback with nothing current', [], { kind: 'rollback', at: AT }, 'image linux has no current build to roll back from'],
    ['rollback with no earlier build', [built(1)], { kind: 'rollback', at: AT }, 'image linux has no earlier build to roll back to'],
    ['rollback after walking all the way back', [built(1), built(2), { kind: 'rollback', at: AT }], { kind: 'rollback', at: AT }, 'image linux has no earlier build to roll back to'],
  ] as const)('refused: %s', (_why, before, event, reason) => {
    const state = run([...before] as CatalogEvent[]);
    expect(catalogRefusal(state, event as CatalogEvent)).toBe(reason);
    expect(applyCatalog(state, event as CatalogEvent)).toEqual({ ok: false, reason });
  });
});

describe('what is kept', () => {
  it('current and keep others, what a rollback can reach first; never more', () => {
    const s = run([1, 2, 3, 4, 5, 6].map((n) => built(n)), 2);
    expect(s.current).toBe(digest(6));
    expect(s.previous).toEqual([digest(5), digest(4)]);
    expect(keptDigests(s)).toEqual([digest(6), digest(5), digest(4)]);
  });

  it('an unpromoted build does not push out what a rollback needs', () => {
    const s = run([built(1), built(2), built(3, false), built(4, false), built(5, false)], 2);
    expect(s.current).toBe(digest(2));
    expect(s.previous).toEqual([digest(1)]);
    expect(keptDigests(s).sort()).toEqual([digest(1), digest(2), digest(5)].sort());
  });

  it('the state is never changed in place', () => {
    const s = run([built(1), built(2)]);
    const copy = structuredClone(s);
    applyCatalog(s, { kind: 'rollback', at: AT });
    applyCatalog(s, built(3));
    expect(s).toEqual(copy);
  });
});
