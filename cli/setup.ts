/**
 * `ekiden setup`: makes a namespace ready for Ekiden — its custom search attributes checked and,
 * where this connection may, created (temporal/namespace-setup.ts). `--check` only reports: exit 0
 * when the namespace is ready, 1 with one line naming what is missing and how to create it.
 * `ekiden up` (on a server it did not start) and `ekiden worker` run the same setup when they start.
 */
import { SEARCH_ATTRIBUTES } from '../core/search-attributes.js';
import { ensureNamespace, missingLine } from '../temporal/namespace-setup.js';
import { helpText, parse, commonOf, type Common } from './args.js';
import { runOperatorCommand } from './command.js';
import { CliError, UsageError } from './errors.js';
import { json, type CliIo, type Env } from './io.js';
import type { TemporalSession } from './temporal.js';

export const SETUP_USAGE = '  ekiden setup [--check]    create (or with --check, only look for) the namespace\'s search attributes';

export const SETUP_HELP = helpText(
  ['ekiden setup [--check] [--address HOST:PORT] [--namespace NS] [--config FILE] [--json]'],
  `Makes the namespace ready for Ekiden: its search attributes (${SEARCH_ATTRIBUTES.map((a) => a.name).join(', ')}, all Keyword)\nare created where missing. Where this connection may not create them (Temporal Cloud), one line\nnames them and the command that does. Safe to run again; \`ekiden up\` and \`ekiden worker\` run it too.`,
  [['--check', 'only look: exit 0 when the namespace is ready, 1 naming what is missing']],
);

export type SetupCommand = Common & { verb: 'setup'; check: boolean };

export function parseSetupCommand(argv: string[], env: Env): SetupCommand {
  const { values, positionals } = parse(argv, { check: { type: 'boolean' } }, 'setup', SETUP_HELP);
  if (positionals.length) throw new UsageError(`setup: unexpected argument "${positionals[0]}"; see \`ekiden setup --help\``);
  return { verb: 'setup', check: values.check === true, ...commonOf(values, env) };
}

export async function runSetup(session: TemporalSession, io: CliIo, cmd: SetupCommand): Promise<number> {
  const report = await ensureNamespace(session.connection.operatorService, session.target, { create: !cmd.check });
  if (cmd.json) json(io, { address: session.target.address, ...report, ready: report.missing.length === 0 });
  if (report.missing.length) throw new CliError(missingLine(session.target, report.missing));
  if (cmd.json) return 0;
  const where = `namespace ${report.namespace} on ${session.target.address}`;
  if (report.created.length) io.out(`${where}: created search attributes ${report.created.join(', ')}; ready for Ekiden`);
  else io.out(`${where}: search attributes ${report.present.join(', ')} present; ready for Ekiden`);
  return 0;
}

export function setupCommand(argv: string[], io: CliIo): Promise<number> {
  return runOperatorCommand(io, () => parseSetupCommand(argv, io.env), (session, cmd) => runSetup(session, io, cmd));
}
