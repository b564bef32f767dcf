/**
 * The ways an `ekiden` command ends early on purpose: a UsageError (bad arguments or config;
 * exit 2, before anything is contacted), a CliError (the command ran and could not do what
 * was asked; exit 1) — both with a one-line message — and a HelpRequest (`--help` / `-h`:
 * the verb's usage on stdout, exit 0).
 */
import { unknownSearchAttribute } from '../temporal/namespace-setup.js';

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

function line(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  return message.split('\n')[0]!.trim();
}

/**
 * The first line of an error's message: what the CLI prints. A Temporal client ServiceError
 * ("Failed to start Workflow") gets its gRPC cause's line after it; a start the server refused
 * for an unknown search attribute names the fix instead (`ekiden setup`).
 */
export function firstLine(err: unknown): string {
  const unknown = unknownSearchAttribute(err);
  if (unknown) return `the namespace has no search attribute ${unknown}: Ekiden's search attributes are not set up there; run \`ekiden setup\` with the same --address/--namespace/--config`;
  const cause = (err as { cause?: unknown } | null)?.cause;
  if (err instanceof Error && err.name === 'ServiceError' && cause instanceof Error) return `${line(err)}: ${line(cause)}`;
  return line(err);
}
