/**
 * What an operator verb sees of the world: its environment, where its output and diagnostics
 * go, and the clock — one object so tests can run `ekiden …` in-process and read what it
 * printed. Also the one way `--json` results are printed.
 */

export type Env = Record<string, string | undefined>;

export interface CliIo {
  env: Env;
  /** One line (or block) of normal output. */
  out(text: string): void;
  /** One line of diagnostics. */
  err(text: string): void;
  now(): number;
}

/** A `--json` result: indented JSON as one block on stdout. */
export function json(io: CliIo, value: unknown): void {
  io.out(JSON.stringify(value, null, 2));
}
