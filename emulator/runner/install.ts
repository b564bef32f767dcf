/**
 * TEST AND DEMO INFRASTRUCTURE — gives a directory (a fake VM image, a test guest) the runner
 * stand-in in place of actions/runner: executable `run.sh` and `config.sh` that `exec` node on
 * the compiled stand-in entry, so `./config.sh …` and `./run.sh` behave like the real scripts.
 */
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

function defaultEntry(): string {
  const self = fileURLToPath(import.meta.url);
  // Compiled: this file is dist/emulator/runner/install.js, next to main.js. From source
  // (vitest, tsx): emulator/runner/install.ts, so point at the build output instead.
  if (self.endsWith('.ts')) return resolve(dirname(self), '../../dist/emulator/runner/main.js');
  return join(dirname(self), 'main.js');
}

/** Absolute path of the compiled stand-in entry (dist/emulator/runner/main.js). */
export const STANDIN_ENTRY: string = defaultEntry();

export interface InstallStandinRunnerOptions {
  /** Runner directory: receives run.sh and config.sh. Created if missing. */
  dir: string;
  /** Node binary the wrappers exec. Default: the current process's. */
  nodePath?: string;
  /** Compiled stand-in entry. Default: STANDIN_ENTRY. */
  entry?: string;
}

export interface InstalledStandinRunner {
  runSh: string;
  configSh: string;
}

function shQuote(value: string): string {
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

function wrapper(nodePath: string, entry: string, command: 'run' | 'config'): string {
  return [
    '#!/bin/sh',
    '# Ekiden runner stand-in (TEST AND DEMO INFRASTRUCTURE), not actions/runner.',
    '# Like the real scripts, it works from its own directory.',
    'cd "$(dirname "$0")" || exit 1',
    `exec ${shQuote(nodePath)} ${shQuote(entry)} ${command} "$@"`,
    '',
  ].join('\n');
}

export async function installStandinRunner({ dir, nodePath = process.execPath, entry = STANDIN_ENTRY }: InstallStandinRunnerOptions): Promise<InstalledStandinRunner> {
  const absEntry = resolve(entry);
  await mkdir(dir, { recursive: true });
  const runSh = join(dir, 'run.sh');
  const configSh = join(dir, 'config.sh');
  await writeFile(runSh, wrapper(nodePath, absEntry, 'run'), { mode: 0o755 });
  await writeFile(configSh, wrapper(nodePath, absEntry, 'config'), { mode: 0o755 });
  // writeFile's mode applies only to new files.
  await chmod(runSh, 0o755);
  await chmod(configSh, 0o755);
  return { runSh, configSh };
}
