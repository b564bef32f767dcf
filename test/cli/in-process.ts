/**
 * `ekiden ARGS…` run in the test's own process (cli/main.ts's `main`), with its own environment
 * and its output captured; and the check that a failure said exactly one line.
 */
import { expect } from 'vitest';
import { main } from '../../cli/main.js';

export interface Run {
  code: number;
  out: string;
  err: string;
}

export async function ekiden(args: string[], env: Record<string, string | undefined> = {}): Promise<Run> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(args, { env, out: (t) => out.push(t), err: (t) => err.push(t) });
  return { code, out: out.join('\n'), err: err.join('\n') };
}

/** The one line the command wrote to stderr (the test fails when it wrote more or none). */
export function oneLine(r: Run): string {
  const lines = r.err.trim().split('\n');
  expect(lines, r.err).toHaveLength(1);
  return lines[0]!;
}
