/**
 * Custom search attributes Ekiden sets on its workflows, so operators can filter in the
 * Temporal Web UI (`EkidenPool="linux" AND EkidenPhase="busy"`). Values never hold secrets.
 */
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';

export const SA_HOST = defineSearchAttributeKey('EkidenHost', SearchAttributeType.KEYWORD);
export const SA_POOL = defineSearchAttributeKey('EkidenPool', SearchAttributeType.KEYWORD);
export const SA_RUNNER = defineSearchAttributeKey('EkidenRunner', SearchAttributeType.KEYWORD);
export const SA_PHASE = defineSearchAttributeKey('EkidenPhase', SearchAttributeType.KEYWORD);
export const SA_JOB = defineSearchAttributeKey('EkidenJob', SearchAttributeType.KEYWORD);

export const SEARCH_ATTRIBUTE_KEYS = [SA_HOST, SA_POOL, SA_RUNNER, SA_PHASE, SA_JOB];

/** Name → type, for registering them on a server (`--search-attribute Name=Keyword`). */
export const SEARCH_ATTRIBUTES: ReadonlyArray<{ name: string; type: 'Keyword' }> = SEARCH_ATTRIBUTE_KEYS.map((k) => ({
  name: k.name,
  type: 'Keyword' as const,
}));

/** Phases of a runner's life, in order; `phase` search attribute values. */
export const RunnerPhase = {
  Pulling: 'pulling',
  Credential: 'credential',
  Cloning: 'cloning',
  Booting: 'booting',
  Launching: 'launching',
  Idle: 'idle',
  Busy: 'busy',
  Cleaning: 'cleaning',
  Done: 'done',
  Failed: 'failed',
} as const;
export type RunnerPhase = (typeof RunnerPhase)[keyof typeof RunnerPhase];
