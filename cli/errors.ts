/**
 * The ways an `ekiden` command ends early on purpose: a UsageError (bad arguments or config;
 * exit 2, before anything is contacted), a CliError (the command ran and could not do what
 * was asked; exit 1) — both with a one-line message — and a HelpRequest (`--help` / `-h`:
 * the verb's usage on stdout, exit 0).
 */

export class UsageError extends Error {
  override readonly name = 'UsageError';
}

export class CliError extends Error {
  override readonly name = 'CliError';
}

/** `--help` or `-h` among a verb's arguments: `usage` is what to print. */
export class HelpRequest extends Error {
  override readonly name = 'HelpRequest';
  constructor(readonly usage: string) {
    super('help requested');
  }
}

/** The first line of an error's message: what the CLI prints. */
export function firstLine(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  return message.split('\n')[0]!.trim();
}
