/**
 * Replay fixtures: workflow histories recorded per release under
 * test/fixtures/histories/<version>/, replayed by every run against today's workflow code so a
 * change that breaks a workflow in flight fails the build. A fixture, once recorded, is never
 * overwritten: `EKIDEN_RECORD_HISTORIES=1` writes only the ones the current version lacks.
 */
import type { temporal } from '@temporalio/proto';
import { historyFromJSON, historyToJSON } from '@temporalio/common/lib/proto-utils.js';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from './harness.js';

export const FIXTURE_ROOT = join(ROOT, 'test', 'fixtures', 'histories');

type History = temporal.api.history.v1.IHistory;

function packageVersion(): string {
  return (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
}

/** Keep `history` as this release's fixture `name`, when recording is asked for and it has none yet. */
export function recordFixture(name: string, history: History): void {
  if (process.env.EKIDEN_RECORD_HISTORIES !== '1') return;
  const dir = join(FIXTURE_ROOT, packageVersion());
  const file = join(dir, `${name}.json`);
  if (existsSync(file)) return; // recorded fixtures are history: never rewritten
  mkdirSync(dir, { recursive: true });
  writeFileSync(file, historyToJSON(history));
}

/** Every recorded fixture of every release, named `<version>/<file>`. */
export function recordedHistories(): Array<{ workflowId: string; history: History }> {
  if (!existsSync(FIXTURE_ROOT)) return [];
  const out: Array<{ workflowId: string; history: History }> = [];
  for (const version of readdirSync(FIXTURE_ROOT).sort()) {
    const dir = join(FIXTURE_ROOT, version);
    if (!statSync(dir).isDirectory()) continue;
    for (const f of readdirSync(dir).filter((x) => x.endsWith('.json')).sort()) {
      out.push({ workflowId: `${version}/${f}`, history: historyFromJSON(JSON.parse(readFileSync(join(dir, f), 'utf8'))) });
    }
  }
  return out;
}
