/**
 * `npm run bench:fleet [-- --rate 0.5 --duration 90 --hosts 50 --slots 2 --pools 2 --min-idle 1 --max 100
 *  --job-seconds 0 --skip-baseline]`:
 * a simulated fleet under steady demand, on one Temporal dev server and the GitHub emulator.
 *
 * Fleet: `--hosts` host workers in this one process (ids h01…h50, one NativeConnection, each
 * with its own FakeDriver root over the same image, each announcing itself with capacity
 * `--slots`; only h01 also serves the shared queue — workflows and GitHub activities), and
 * `--pools` PoolWorkflows spanning every host (size 0, minIdle `--min-idle`, max `--max`, a
 * label each; jobs alternate between them; a job runs `echo hi`, after `sleep N` with
 * `--job-seconds N`). Demand takes the product path: jobs are queued in
 * the emulator, which sends signed `workflow_job` webhooks to the receiver (webhooks/server.ts),
 * which routes them to the pools (`jobQueued`, `jobProgress`) and to the runner that took the
 * job; the pools place runners through the HostWorkflows' `acquireSlot` update.
 *
 * Baseline (same process, server, emulator, driver, image, job count and rate; run first,
 * before the fleet exists): ONE host worker serving both queues, no PoolWorkflow, no
 * HostWorkflow, no webhooks. The bench keeps the same number of runners warm (pools ×
 * min-idle) and starts one RunnerWorkflow directly for every job it queues — the policy a pool
 * follows in its steady state (a job takes a warm runner, a new one replaces it) without the
 * machinery. The ratios (fleet ÷ baseline) are therefore "what pools, host slots, 50 host
 * workers and webhook routing cost per lifecycle", not "Ekiden against no Ekiden"
 * (bench:lifecycle measures that). With warm runners both sides assign a job within a few ms
 * (the emulator hands it to a polling runner at once), so queue → assigned separates them only
 * when a pool has no warm runner at hand (`jobs waiting > 1 s`).
 *
 * Each phase: 10 s idle with the runners warm (CPU per second), then the jobs, measured over a
 * window from the first job queued until every job has completed and every runner that ran one
 * has closed:
 * - lifecycles per minute: RunnerWorkflows of the phase that closed in the window ÷ window.
 *   Demand-bound by construction (jobs arrive at `--rate`); "runner lives started per job" and
 *   the settled outcomes show waste (runners started, then retired without a job).
 * - queue → assigned: from the bench's queueJob call to the emulator's `in_progress` event for
 *   the job (runner_name set), p50 / p95 / max.
 * - CPU per lifecycle: process.cpuUsage() of this process (every worker, the emulator, the
 *   webhook receiver and the bench itself); the Temporal dev server from /proc/<pid>/stat; the
 *   fake VMs are separate processes — what this process reaped of them (its cutime + cstime)
 *   is a lower bound (runner processes reparented away from their guest are not counted). The
 *   machine's busy share (/proc/stat) includes other users of this machine.
 * - history events per lifecycle: RunnerWorkflow histories (fetchHistory on ≤ 20 runners that
 *   served a job), plus the PoolWorkflows' and HostWorkflows' events in the window (every run,
 *   continue-as-new included) ÷ the window's lifecycles. The sample also tells how many runners
 *   had their awaitJobStart cancelled by a retirement although a job had landed on them.
 *
 * Defaults are sized for 2 shared cores and a run of about 5 minutes (two 90 s phases). At the
 * end (and on SIGINT/SIGTERM; a second one exits at once): pools cancelled (their runners
 * deregister and delete their VMs), remaining runners cancelled, leftovers counted and printed
 * — fake VM processes, VM directories, emulator runner registrations, open RunnerWorkflows —
 * then workers, receiver, emulator and server stop. Exit code 1 on error, interruption or
 * leftovers. Last line: one JSON object.
 *
 * This file runs the parts in order; they live in bench/fleet/: context.ts (options,
 * interruption), run-log.ts (captured logs), infra.ts (server, emulator, hosts and workers),
 * phase.ts (demand and measurement), baseline.ts and fleet-phase.ts (the two phases),
 * teardown.ts (cleanup and leftovers), report.ts (the table and the JSON line), with
 * measure.ts and temporal.ts as their instruments.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { endBaseline, runBaseline } from './fleet/baseline.js';
import { handleInterruption, parseOptions, type Bench } from './fleet/context.js';
import { poolNamesFor, reportFleet, runFleet, setUpFleet } from './fleet/fleet-phase.js';
import { newResources, startInfrastructure } from './fleet/infra.js';
import { JobBook } from './fleet/phase.js';
import { printFigures, printLogSummary, summaryJson, type Results } from './fleet/report.js';
import { RunLog } from './fleet/run-log.js';
import { tearDown } from './fleet/teardown.js';
import { errorMessage } from '../core/failures.js';

async function main(): Promise<void> {
  const opts = parseOptions();
  const { signal, pause } = handleInterruption();
  const log = new RunLog();
  console.log(
    `bench:fleet — ${opts.hosts} hosts × ${opts.slots} slots, ${opts.pools} pool(s) (size 0, minIdle ${opts.minIdle}, max ${opts.max}), ` +
      `${opts.jobs} jobs (\`${opts.jobRun}\`) at ${opts.rate}/s per phase; baseline: ${opts.skipBaseline ? 'skipped' : `one host, direct RunnerWorkflows, ${opts.warm} kept warm`}`,
  );
  const bench: Bench = { opts, dir: mkdtempSync(join(tmpdir(), 'ekiden-bench-fleet-')), log, signal, pause };
  const res = newResources();
  const book = new JobBook();
  const poolNames = poolNamesFor(opts.pools);
  const results: Results = {};
  let error: string | undefined;

  try {
    const infra = await startInfrastructure(bench, res, book.onJob);
    if (!opts.skipBaseline) {
      results.baseline = await runBaseline(bench, infra, res, book);
      await endBaseline(bench, infra, res, results.baseline);
    }
    const hostIds = await setUpFleet(bench, infra, res, poolNames);
    results.fleet = await runFleet(bench, infra, book, poolNames, hostIds);
    await reportFleet(bench, infra, poolNames);
  } catch (err) {
    if (!signal.aborted) {
      error = errorMessage(err);
      console.log(`error: ${error}`);
    }
  }

  // Also after an interruption.
  const leftovers = await tearDown(bench, res, poolNames);
  log.restoreConsole();

  printFigures(results, opts.warm);
  printLogSummary(log, res.workers.errors);
  console.log(JSON.stringify(summaryJson(opts, results, leftovers, log.warnings, { interrupted: signal.aborted, error })));
  const clean = leftovers.fakeVmProcesses === 0 && leftovers.vmDirs === 0 && leftovers.registrations === 0 && leftovers.openRunners === 0;
  process.exitCode = error || signal.aborted || !clean ? 1 : 0;
}

await main();
