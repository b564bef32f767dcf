/**
 * Starts one real Temporal dev server (the Temporal CLI) for the test run and hands its
 * address to the tests. Tests that need it skip with a reason when no CLI can be found.
 */
import type { TestProject } from 'vitest/node';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { defaultCacheDir, locateTemporalCli, startDevServer, type DevServer } from '../../temporal/dev-server.js';

let server: DevServer | undefined;

declare module 'vitest' {
  export interface ProvidedContext {
    temporalAddress: string;
    temporalUiUrl: string;
    temporalCli: string;
    temporalMissing: string;
  }
}

export async function setup(project: TestProject): Promise<void> {
  const cli = await locateTemporalCli({
    explicitPath: process.env.TEMPORAL_CLI_PATH,
    searchPath: process.env.PATH,
    cacheDir: defaultCacheDir(process.env),
    allowGoInstall: true,
  });
  if (!cli) {
    project.provide('temporalMissing', 'no Temporal CLI (set TEMPORAL_CLI_PATH or install Go to build it)');
    project.provide('temporalAddress', '');
    project.provide('temporalUiUrl', '');
    project.provide('temporalCli', '');
    return;
  }
  const dir = mkdtempSync(join(tmpdir(), 'ekiden-test-temporal-'));
  server = await startDevServer({ cliPath: cli, dbFile: join(dir, 'temporal.db'), logFile: join(dir, 'temporal.log'), startTimeoutMs: 120_000 });
  project.provide('temporalMissing', '');
  project.provide('temporalAddress', server.address);
  project.provide('temporalUiUrl', server.uiUrl ?? '');
  project.provide('temporalCli', cli);
}

export async function teardown(): Promise<void> {
  await server?.stop();
}
