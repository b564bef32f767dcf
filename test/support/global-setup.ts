/**
 * Starts one real Temporal dev server (the Temporal CLI) for the test run and hands its
 * address to the tests. Tests that need it skip with a reason when no CLI can be found.
 */
import type { TestProject } from 'vitest/node';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { nowTicks, strays } from './strays.js';
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

let startedAt = 0;

export async function setup(project: TestProject): Promise<void> {
  startedAt = nowTicks();
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
  // No process a test started may outlive the run: give stopping ones a moment, then fail.
  let left = strays(startedAt);
  for (let i = 0; i < 50 && left.length > 0; i++) {
    await new Promise((r) => setTimeout(r, 200));
    left = strays(startedAt);
  }
  if (left.length === 0) return;
  // Not killed: with two suites running at once, the other run's processes look the same.
  // Vitest reports a teardown error without failing the run: fail it here.
  process.exitCode = 1;
  throw new Error(`the test run left ${left.length} process(es) behind:\n${left.map((p) => `  ${p.pid} ${p.cmdline.slice(0, 200)}`).join('\n')}`);
}

