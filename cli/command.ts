/**
 * The frame every operator verb runs in, and its exit codes: the arguments are checked first
 * (`--help` prints the verb's usage and exits 0; a mistake, or node:util's own parse error, is
 * one line and exit 2, before anything is contacted), then Temporal is reached and the verb
 * runs (any failure is one line and exit 1); the connection is closed either way.
 */
import { ConfigError } from '../config/fields.js';
import type { Common } from './args.js';
import { firstLine, HelpRequest, UsageError } from './errors.js';
import type { CliIo } from './io.js';
import { connectTemporal, type TemporalSession } from './temporal.js';

/** node:util parseArgs's messages, made one line and about the flag. */
export function parseArgsMessage(err: Error): string {
  const flag = /^Option '(-[-\w]+)/.exec(err.message)?.[1];
  if (flag && /argument is ambiguous|argument missing/.test(err.message)) {
    return `${flag}: missing value; write ${flag} VALUE (${flag}=VALUE for a value starting with -)`;
  }
  const unknown = /^Unknown option '([^']+)'/.exec(err.message)?.[1];
  if (unknown) return `unknown option ${unknown}; see \`ekiden help\``;
  return firstLine(err);
}

/** `parse()`, then `run` on a session to the command's server: the exit code, after one-line errors on io.err. */
export async function runOperatorCommand<C extends Common>(
  io: CliIo,
  parse: () => C,
  run: (session: TemporalSession, cmd: C) => Promise<number>,
): Promise<number> {
  let cmd: C;
  try {
    cmd = parse();
  } catch (err) {
    if (err instanceof HelpRequest) {
      io.out(err.usage);
      return 0;
    }
    const code = (err as { code?: string }).code;
    if (typeof code === 'string' && code.startsWith('ERR_PARSE_ARGS')) {
      io.err(`ekiden: ${parseArgsMessage(err as Error)}`);
      return 2;
    }
    if (err instanceof UsageError || err instanceof ConfigError) {
      io.err(`ekiden: ${firstLine(err)}`);
      return 2;
    }
    throw err;
  }
  let session: TemporalSession | undefined;
  try {
    session = await connectTemporal(cmd.target);
    return await run(session, cmd);
  } catch (err) {
    io.err(`ekiden: ${firstLine(err)}`);
    // A credential file that cannot be used (unreadable, expired, not the key's) is a config mistake.
    return err instanceof ConfigError && !session ? 2 : 1;
  } finally {
    await session?.close().catch(() => {});
  }
}
