/**
 * The two ways an `ekiden` command fails on purpose: a UsageError (bad arguments or config;
 * exit 2, before anything is contacted) and a CliError (the command ran and could not do
 * what was asked; exit 1). Both carry a one-line message.
 */

export class UsageError extends Error {
  override readonly name = 'UsageError';
}

export class CliError extends Error {
  override readonly name = 'CliError';
}

/** The first line of an error's message: what the CLI prints. */
export function firstLine(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  return message.split('\n')[0]!.trim();
}
