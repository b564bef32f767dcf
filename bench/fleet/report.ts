/**
 * bench:fleet's report: the figures of both phases side by side with their ratio, each
 * phase's outcomes, activities and event types, what the logs said (start-up lines, SDK
 * notices, worker errors, the most frequent warnings), and the last line — one JSON object
 * with every figure, the ratios, the leftovers, and whether the run was interrupted or failed.
 */
import { availableParallelism } from 'node:os';
import type { BenchOptions } from './context.js';
import { fmt, r0, r1, r2, ratio } from './measure.js';
import type { PhaseResult } from './phase.js';
import type { RunLog } from './run-log.js';
import type { Leftovers } from './teardown.js';

/** The phases that ran, by name (`baseline` first when it ran). */
export type Results = Record<string, PhaseResult>;

/** The figures table (when either phase ran), then each phase's outcomes and history make-up. */
export function printFigures(results: Results, warm: number): void {
  const b = results.baseline;
  const f = results.fleet;
  if (!(f || b)) return;
  const row = (label: string, get: (r: PhaseResult) => number, digits: (n: number) => number | null, unit = '') => {
    const fv = f ? digits(get(f)) : null;
    const bv = b ? digits(get(b)) : null;
    const ratioText = f && b ? fmt(ratio(get(f), get(b))) : 'n/a';
    console.log(`  ${label.padEnd(44)} ${fmt(fv, unit).padStart(12)} ${fmt(bv, unit).padStart(12)} ${('×' + ratioText).padStart(8)}`);
  };
  console.log('');
  console.log(`  ${'figure'.padEnd(44)} ${'fleet'.padStart(12)} ${'baseline'.padStart(12)} ${'ratio'.padStart(8)}`);
  row('jobs succeeded', (r) => r.jobsSucceeded, r0);
  row('window (first queued → last runner closed)', (r) => r.windowS, r1, ' s');
  row('runner lifecycles closed in window', (r) => r.lifecycles, r0);
  row('lifecycles per minute', (r) => r.lifecyclesPerMin, r1);
  row('runner lives started per job', (r) => r.runnerLivesPerJob, r2);
  row('queue → assigned p50', (r) => r.assignP50Ms, r0, ' ms');
  row('queue → assigned p95', (r) => r.assignP95Ms, r0, ' ms');
  row('queue → assigned max', (r) => r.assignMaxMs, r0, ' ms');
  row('jobs waiting > 1 s (no warm runner)', (r) => r.coldJobs, r0);
  row(`idle runners in window, avg (target ${warm})`, (r) => r.idleRunnersAvg, r2);
  row('idle runners in window, max', (r) => r.idleRunnersMax, r0);
  row('bench-process CPU per lifecycle', (r) => r.workerCpuMsPerLifecycle, r0, ' ms');
  row('bench-process CPU per job', (r) => r.workerCpuMsPerJob, r0, ' ms');
  row('dev-server CPU per lifecycle', (r) => r.serverCpuMsPerLifecycle, r0, ' ms');
  row('fake-VM CPU per lifecycle (reaped, ≥)', (r) => r.fakeVmCpuMsPerLifecycleLowerBound, r0, ' ms');
  row(`machine busy, all processes (${availableParallelism()} cores = 100 %)`, (r) => r.machineBusyPct, r1, ' %');
  row('  of which this run (bench + server + VMs ≥)', (r) => r.ownBusyPct, r1, ' %');
  row('idle (warm, no jobs): bench-process CPU per s', (r) => r.idleWorkerCpuMsPerS, r0, ' ms');
  row('idle (warm, no jobs): dev-server CPU per s', (r) => r.idleServerCpuMsPerS, r0, ' ms');
  row('runners retired while their job landed', (r) => r.retiredWithJobPct, r0, ' %');
  row('RunnerWorkflow events per lifecycle', (r) => r.runnerEventsPerLifecycle, r1);
  row('PoolWorkflow events per lifecycle', (r) => r.poolEventsPerLifecycle, r1);
  row('HostWorkflow events per lifecycle', (r) => r.hostEventsPerLifecycle, r1);
  row('all events per lifecycle', (r) => r.runnerEventsPerLifecycle + (r.poolEventsPerLifecycle || 0) + (r.hostEventsPerLifecycle || 0), r1);
  for (const [name, r] of Object.entries(results)) {
    console.log(`  ${name} outcomes in window: ${JSON.stringify(r.outcomes)}; every runner of the phase once settled: ${JSON.stringify(r.settledOutcomes)}`);
    console.log(`  ${name} runner activities (avg of ${r.runnerEventsSample}): ${Object.entries(r.runnerActivityTypes).map(([k, v]) => `${k} ${v}`).join(', ')}`);
    const top = Object.entries(r.runnerEventTypes).sort((x, y) => y[1] - x[1]);
    console.log(`  ${name} runner events by type (avg): ${top.map(([k, v]) => `${k} ${v}`).join(', ')}`);
  }
  console.log('  (bench-process CPU covers every worker, the emulator, the webhook receiver and the bench; fake VMs are separate processes)');
}

/** What the logs said: start-up lines, SDK notices, worker errors and the ten most frequent warnings. */
export function printLogSummary(log: RunLog, workerErrors: string[]): void {
  console.log(`  host-worker start-up lines: ${log.workerInfoLines}; SDK "no workflows registered" notices: ${log.sdkNotices}; worker errors: ${workerErrors.length ? workerErrors.join('; ') : 'none'}`);
  const topWarnings = [...log.warnings.entries()].sort((x, y) => y[1] - x[1]).slice(0, 10);
  console.log(`  warnings: ${topWarnings.length === 0 ? 'none' : ''}`);
  for (const [msg, n] of topWarnings) console.log(`    ${String(n).padStart(4)} × ${msg}`);
}

/** The last line's object: the options, `<phase>_<figure>` for every figure, the ratios, leftovers, warnings, outcome. */
export function summaryJson(
  opts: BenchOptions,
  results: Results,
  leftovers: Leftovers,
  warnings: Map<string, number>,
  outcome: { interrupted: boolean; error?: string },
): Record<string, unknown> {
  const json: Record<string, unknown> = {
    hosts: opts.hosts,
    slots_per_host: opts.slots,
    pools: opts.pools,
    min_idle_per_pool: opts.minIdle,
    max_per_pool: opts.max,
    rate_jobs_per_s: opts.rate,
    job_seconds: opts.jobSeconds,
    jobs_per_phase: opts.jobs,
  };
  const snake = (k: string) => k.replace(/[A-Z]/g, (m) => `_${m.toLowerCase()}`);
  const numeric = (r: PhaseResult, k: keyof PhaseResult) => {
    const v = r[k];
    return typeof v === 'number' ? (Number.isInteger(v) ? v : r1(v)) : v;
  };
  for (const [name, r] of Object.entries(results)) {
    for (const k of Object.keys(r) as Array<keyof PhaseResult>) {
      if (k === 'runnerEventTypes' || k === 'runnerActivityTypes') continue;
      json[`${name}_${snake(k)}`] = numeric(r, k);
    }
  }
  const f = results.fleet;
  const b = results.baseline;
  if (f && b) {
    json.ratio_lifecycles_per_min = ratio(f.lifecyclesPerMin, b.lifecyclesPerMin);
    json.ratio_assign_p50 = ratio(f.assignP50Ms, b.assignP50Ms);
    json.ratio_assign_p95 = ratio(f.assignP95Ms, b.assignP95Ms);
    json.ratio_worker_cpu_per_lifecycle = ratio(f.workerCpuMsPerLifecycle, b.workerCpuMsPerLifecycle);
    json.ratio_worker_cpu_per_job = ratio(f.workerCpuMsPerJob, b.workerCpuMsPerJob);
    json.ratio_server_cpu_per_lifecycle = ratio(f.serverCpuMsPerLifecycle, b.serverCpuMsPerLifecycle);
    json.ratio_runner_events_per_lifecycle = ratio(f.runnerEventsPerLifecycle, b.runnerEventsPerLifecycle);
    json.ratio_all_events_per_lifecycle = ratio(f.runnerEventsPerLifecycle + f.poolEventsPerLifecycle + f.hostEventsPerLifecycle, b.runnerEventsPerLifecycle);
  }
  json.leftover_fake_vm_processes = leftovers.fakeVmProcesses;
  json.leftover_vm_dirs = leftovers.vmDirs;
  json.leftover_registrations = leftovers.registrations;
  json.leftover_open_runners = leftovers.openRunners;
  json.warnings = [...warnings.values()].reduce((a, x) => a + x, 0);
  json.interrupted = outcome.interrupted;
  if (outcome.error) json.error = outcome.error;
  return json;
}
