/**
 * The contract's wire names follow one scheme (docs/contract.md): every definition in
 * workflows/api.ts is exported as `<wireName><Kind>`, its wire name bare lowerCamelCase and
 * unique; and no client or test names a message by a string instead of its definition.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import * as api from '../../workflows/api.js';
import { ROOT } from '../support/harness.js';

type Def = { type: 'signal' | 'query' | 'update'; name: string };
const KIND = { signal: 'Signal', query: 'Query', update: 'Update' } as const;

const isDef = (v: unknown): v is Def =>
  typeof v === 'object' && v !== null && 'type' in v && 'name' in v && ['signal', 'query', 'update'].includes((v as Def).type);
const definitions: Array<[string, Def]> = Object.entries(api as Record<string, unknown>).flatMap(([k, v]) => (isDef(v) ? [[k, v] as [string, Def]] : []));

/** The wire names of today's contract: renaming one breaks every workflow in flight. */
const WIRE = {
  signal: ['announceHost', 'hostDown', 'hostImages', 'imageBuildFailed', 'imageBuilt', 'imagePromoted', 'jobAssigned', 'jobProgressed', 'jobQueued', 'releaseSlot', 'retireHost', 'retireRunner', 'runnerEnded', 'runnerPhaseChanged'],
  query: ['hostStatus', 'imageBuildStatus', 'imageStatus', 'poolStatus', 'runnerStatus'],
  update: ['acquireSlot', 'drainPool', 'promoteImage', 'resumePool', 'rollbackImage', 'scalePool'],
};

describe('the workflow contract', () => {
  it('defines every message the workflows accept', () => {
    expect(definitions.length).toBe(WIRE.signal.length + WIRE.query.length + WIRE.update.length);
  });

  it.each(definitions)('%s is named <wireName><Kind> with a bare lowerCamelCase wire name', (exported, def) => {
    expect(exported).toBe(`${def.name}${KIND[def.type]}`);
    expect(def.name).toMatch(/^[a-z][a-zA-Z]*$/);
    expect(def.name).not.toMatch(/(Signal|Query|Update)$/);
  });

  it('the wire names are the recorded ones (a rename is a deliberate, versioned change)', () => {
    for (const kind of ['signal', 'query', 'update'] as const) {
      expect(definitions.filter(([, d]) => d.type === kind).map(([, d]) => d.name).sort()).toEqual(WIRE[kind]);
    }
  });

  it('no code names a signal, query or update by a string', () => {
    const dirs = ['activities', 'bench', 'cli', 'config', 'webhooks', 'workers', 'workflows', 'test'];
    const bad: string[] = [];
    const walk = (dir: string) => {
      for (const name of readdirSync(dir)) {
        const path = join(dir, name);
        if (statSync(path).isDirectory()) walk(path);
        else if (name.endsWith('.ts') && path !== fileURLToPath(import.meta.url)) {
          const text = readFileSync(path, 'utf8');
          const hits: string[] = [...(text.match(/\.(signal|query|executeUpdate|startUpdate|executeUpdateWithStart)(<[^>(]*>)?\(\s*['"`][a-zA-Z]+['"`]|\bsignal:\s*['"`][a-zA-Z]+['"`]/g) ?? [])];
          // Test stand-ins may define test-only queries of their own; product code defines messages only in api.ts.
          if (!path.startsWith(join(ROOT, 'test'))) hits.push(...(text.match(/define(Signal|Query|Update)(<[^>(]*>)?\(\s*['"`]/g) ?? []));
          for (const h of hits) if (!path.endsWith(join('workflows', 'api.ts'))) bad.push(`${relative(ROOT, path)}: ${h}`);
        }
      }
    };
    for (const d of dirs) walk(join(ROOT, d));
    expect(bad).toEqual([]);
  });
});
