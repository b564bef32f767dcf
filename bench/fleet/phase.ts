/**
 * One measured phase of bench:fleet (the baseline or the fleet): the idle cost with the
 * runners warm, the demand generator (`jobs` jobs queued in the emulator at `rate`), the wait
 * until every job is done and every runner that ran one has closed, and the figures of that
 * window — lifecycles, queue → assigned, CPU, history events on a sample of runners — then the
 * outcomes once surplus runners have been retired. What a phase queues, and which runners,
 * pools and hosts are its own, is its PhaseSpec.
 */
import type { Client } from '@temporalio/client';
import { availableParallelism } from 'node:os';
import { parseRunnerName, runToken } from '../../core/names.js';
import type { JobEvent } from '../../emulator/github/server.js';
import type { Bench } from './context.js';
import { REPO, type Infra } from './infra.js';
import { cpuSnapshot, eventTypeOf, guestPidsUnder, pct, r1, type CpuSnapshot, type HistoryEvent } from './measure.js';
import { historyTotal, openRunners, outcomeOf } from './temporal.js';

/** After the last job is queued: how long the jobs and their runners may take to finish. */
const DRAIN_TIMEOUT_MS = 120_000;
/** Idle measurement before each phase's first job (warm runners, no jobs). */
const IDLE_MS = 10_000;
/** After a phase: how long surplus runners may take to be retired before outcomes are read. */
const SETTLE_MS = 20_000;

/** Job bookkeeping from the emulator's own events (synchronous, in this process). */
export class JobBook {
  readonly assigned = new Map<number, { at: number; runnerName: string }>();
  readonly completed = new Map<number, { conclusion: string | null }>();
  readonly onJob = (e: JobEvent): void => {
    if (e.action === 'in_progress' && !this.assigned.has(e.job.id)) this.assigned.set(e.job.id, { at: performance.now(), runnerName: e.job.runner_name ?? '' });
    if (e.action === 'completed') this.completed.set(e.job.id, { conclusion: e.job.conclusion });
  };

  /** The run token of the runner that took the job, if one did. */
  tokenOf(jobId: number): string | undefined {
    return parseRunnerName(this.assigned.get(jobId)?.runnerName ?? '')?.token;
  }
}

interface JobRecord {
  id: number;
  queuedAt: number;
}

export interface PhaseSpec {
  name: string;
  labelsFor: (i: number) => string[];
  /** Called right after each job is queued (the baseline starts its runner here). */
  onQueued?: (i: number) => void;
  ownsRunner: (workflowId: string) => boolean;
  /** GitHub runner names of the phase start with one of these. */
  runnerPrefixes: string[];
  poolIds: string[];
  hostIds: string[];
}

export interface PhaseResult {
  jobs: number;
  jobsCompleted: number;
  jobsSucceeded: number;
  /** First job queued → every job done and every runner that ran one closed. */
  windowS: number;
  lifecycles: number;
  lifecyclesPerMin: number;
  /** RunnerWorkflows started in the window per job (1 = no runner wasted). */
  runnerLivesPerJob: number;
  assignP50Ms: number;
  assignP95Ms: number;
  assignMaxMs: number;
  /** Jobs that waited more than a second for a runner (no warm one was there). */
  coldJobs: number;
  /** Runners online and idle at the emulator during the window, sampled every 500 ms. */
  idleRunnersAvg: number;
  idleRunnersMax: number;
  workerCpuMsPerLifecycle: number;
  workerCpuMsPerJob: number;
  serverCpuMsPerLifecycle: number;
  fakeVmCpuMsPerLifecycleLowerBound: number;
  machineBusyPct: number;
  /** This run's own processes (bench, dev server, reaped fake VMs) as a share of all cores. */
  ownBusyPct: number;
  /** With the runners warm and no jobs, before the first job: CPU ms per second. */
  idleWorkerCpuMsPerS: number;
  idleServerCpuMsPerS: number;
  /** Sampled runners that served a job after their awaitJobStart was cancelled (retired while the job landed). */
  retiredWithJobPct: number;
  runnerEventsPerLifecycle: number;
  runnerEventsSample: number;
  poolEventsPerLifecycle: number;
  hostEventsPerLifecycle: number;
  outcomes: Record<string, number>;
  /** Outcomes of every runner of the phase once it settled (retirements after the window included). */
  settledOutcomes: Record<string, number>;
  runnerEventTypes: Record<string, number>;
  runnerActivityTypes: Record<string, number>;
}

/** A runner of the phase that closed in the window. */
interface ClosedRunner {
  workflowId: string;
  runId: string;
  status: string;
}

/** What fetchHistory showed on a sample of the runners that served a job. */
interface HistorySample {
  size: number;
  events: number;
  /** Runners whose awaitJobStart was cancelled although they served a job. */
  retiredWithJob: number;
  /** Per sampled runner, by event type and by activity type. */
  eventTypes: Record<string, number>;
  activityTypes: Record<string, number>;
}

/** Queues the jobs at the rate, waits until they are done and their runners closed, measures. */
export async function runPhase(bench: Bench, infra: Infra, book: JobBook, p: PhaseSpec): Promise<PhaseResult> {
  const { server, emu, client: c } = infra;
  // Idle cost first: warm runners, no jobs.
  const idleStart = cpuSnapshot(server.pid);
  await bench.pause(IDLE_MS);
  const idleEnd = cpuSnapshot(server.pid);
  const poolBefore = await historyTotal(c, p.poolIds);
  const hostBefore = await historyTotal(c, p.hostIds);
  const jobs: JobRecord[] = [];
  const idleSamples: number[] = [];
  const idleNow = () => emu.runners().filter((r) => p.runnerPrefixes.some((x) => r.name.startsWith(x)) && r.status === 'online' && !r.busy).length;
  const sampler = setInterval(() => idleSamples.push(idleNow()), 500);
  sampler.unref(); // an interruption leaves through pause(); this must not keep the process up
  const before = cpuSnapshot(server.pid);
  await queueJobs(bench, infra, book, p, before.at, jobs);
  let after = await awaitDrain(bench, c, book, jobs, server.pid);
  clearInterval(sampler);
  if (!after) {
    after = cpuSnapshot(server.pid);
    bench.log.say(`${p.name}: drain timed out after ${DRAIN_TIMEOUT_MS / 1000} s; ${jobs.filter((j) => !book.completed.has(j.id)).length} job(s) not completed`);
  }
  const poolAfter = await historyTotal(c, p.poolIds);
  const hostAfter = await historyTotal(c, p.hostIds);
  await bench.pause(1_000); // visibility of the last closes

  const { closedInWindow, startedInWindow } = await runnersOfWindow(c, p, before.wall, after.wall);
  const outcomes: Record<string, number> = {};
  for (const r of closedInWindow) {
    const outcome = await outcomeOf(c, r.workflowId, r.runId, r.status);
    outcomes[outcome] = (outcomes[outcome] ?? 0) + 1;
  }
  const servedTokens = new Set(jobs.map((j) => book.tokenOf(j.id)).filter((x) => x !== undefined));
  const sample = await sampleHistories(
    c,
    closedInWindow.filter((r) => servedTokens.has(runToken(r.runId))),
  );

  bench.log.stage = `${p.name} settling`;
  await settle(bench, c, p);
  const settledOutcomes = await settledOutcomesOf(c, p, before.wall);

  const waits = jobs.filter((j) => book.assigned.has(j.id)).map((j) => book.assigned.get(j.id)!.at - j.queuedAt);
  const lifecycles = closedInWindow.length;
  const windowMs = after.at - before.at;
  const per = (x: number | undefined, n = lifecycles) => (x === undefined || n === 0 ? NaN : x / n);
  const cpuMs = (after.process.user + after.process.system - before.process.user - before.process.system) / 1000;
  const diff = (a: number | undefined, b: number | undefined) => (a !== undefined && b !== undefined ? a - b : undefined);
  const machine = before.machine && after.machine ? (after.machine.busy - before.machine.busy) / Math.max(1, after.machine.total - before.machine.total) : NaN;
  const own = cpuMs + (diff(after.server, before.server) ?? 0) + (diff(after.reaped, before.reaped) ?? 0);
  const idleS = (idleEnd.at - idleStart.at) / 1000;
  return {
    jobs: jobs.length,
    jobsCompleted: jobs.filter((j) => book.completed.has(j.id)).length,
    jobsSucceeded: jobs.filter((j) => book.completed.get(j.id)?.conclusion === 'success').length,
    windowS: windowMs / 1000,
    lifecycles,
    lifecyclesPerMin: lifecycles / (windowMs / 60_000),
    runnerLivesPerJob: startedInWindow / jobs.length,
    assignP50Ms: pct(waits, 50),
    assignP95Ms: pct(waits, 95),
    assignMaxMs: waits.length ? Math.max(...waits) : NaN,
    coldJobs: waits.filter((w) => w > 1_000).length,
    idleRunnersAvg: idleSamples.length ? idleSamples.reduce((a, x) => a + x, 0) / idleSamples.length : NaN,
    idleRunnersMax: idleSamples.length ? Math.max(...idleSamples) : NaN,
    workerCpuMsPerLifecycle: per(cpuMs),
    workerCpuMsPerJob: per(cpuMs, jobs.length),
    serverCpuMsPerLifecycle: per(diff(after.server, before.server)),
    fakeVmCpuMsPerLifecycleLowerBound: per(diff(after.reaped, before.reaped)),
    machineBusyPct: machine * 100,
    ownBusyPct: (own / (windowMs * availableParallelism())) * 100,
    idleWorkerCpuMsPerS: (idleEnd.process.user + idleEnd.process.system - idleStart.process.user - idleStart.process.system) / 1000 / idleS,
    idleServerCpuMsPerS: (diff(idleEnd.server, idleStart.server) ?? NaN) / idleS,
    retiredWithJobPct: sample.size ? (sample.retiredWithJob / sample.size) * 100 : NaN,
    runnerEventsPerLifecycle: sample.size ? sample.events / sample.size : NaN,
    runnerEventsSample: sample.size,
    poolEventsPerLifecycle: per(poolAfter - poolBefore),
    hostEventsPerLifecycle: per(hostAfter - hostBefore),
    outcomes,
    settledOutcomes,
    runnerEventTypes: sample.eventTypes,
    runnerActivityTypes: sample.activityTypes,
  };
}

/** The demand generator: job i is queued at `startAt` + i / rate, into `jobs`; progress four times. */
async function queueJobs(bench: Bench, infra: Infra, book: JobBook, p: PhaseSpec, startAt: number, jobs: JobRecord[]): Promise<void> {
  const { jobs: total, rate, jobRun } = bench.opts;
  for (let i = 0; i < total; i++) {
    const wait = startAt + (i * 1000) / rate - performance.now();
    if (wait > 0) await bench.pause(wait);
    const queuedAt = performance.now();
    const job = infra.emu.queueJob({ repo: REPO, name: `${p.name}-${i + 1}`, labels: p.labelsFor(i), steps: [{ name: 'hello', run: jobRun }] });
    jobs.push({ id: job.id, queuedAt });
    p.onQueued?.(i);
    if ((i + 1) % Math.max(1, Math.round(total / 4)) === 0 || i + 1 === total) {
      const a = jobs.filter((j) => book.assigned.has(j.id)).length;
      const d = jobs.filter((j) => book.completed.has(j.id)).length;
      bench.log.say(`${p.name}: ${i + 1}/${total} queued, ${a} assigned, ${d} done, ${guestPidsUnder(bench.dir).length} fake VM(s) running`);
    }
  }
}

/** The window's end: every job done, and none of the runners that ran one still open; undefined after DRAIN_TIMEOUT_MS. */
async function awaitDrain(bench: Bench, c: Client, book: JobBook, jobs: JobRecord[], serverPid: number): Promise<CpuSnapshot | undefined> {
  const deadline = performance.now() + DRAIN_TIMEOUT_MS;
  while (performance.now() < deadline) {
    if (jobs.every((j) => book.completed.has(j.id))) {
      const open = new Set((await openRunners(c)).values());
      const running = jobs.filter((j) => {
        const token = book.tokenOf(j.id);
        return token !== undefined && open.has(token);
      });
      if (running.length === 0) return cpuSnapshot(serverPid);
    }
    await bench.pause(250);
  }
  return undefined;
}

/** Lifecycles: the phase's runners that closed in the window, and how many started in it. */
async function runnersOfWindow(c: Client, p: PhaseSpec, fromWall: number, toWall: number): Promise<{ closedInWindow: ClosedRunner[]; startedInWindow: number }> {
  const closedInWindow: ClosedRunner[] = [];
  let startedInWindow = 0;
  for await (const wf of c.workflow.list({ query: "WorkflowType = 'RunnerWorkflow'" })) {
    if (!p.ownsRunner(wf.workflowId)) continue;
    if (wf.startTime.getTime() >= fromWall - 50 && wf.startTime.getTime() <= toWall) startedInWindow++;
    const closed = wf.closeTime?.getTime();
    if (closed !== undefined && closed >= fromWall && closed <= toWall + 50) {
      closedInWindow.push({ workflowId: wf.workflowId, runId: wf.runId, status: wf.status.name });
    }
  }
  return { closedInWindow, startedInWindow };
}

/** History events: fetchHistory on a sample (≤ 20, spread) of the runners that served a job. */
async function sampleHistories(c: Client, served: ClosedRunner[]): Promise<HistorySample> {
  const stride = Math.max(1, Math.floor(served.length / 20));
  const sample = served.filter((_, i) => i % stride === 0).slice(0, 20);
  const eventTypes: Record<string, number> = {};
  const activityTypes: Record<string, number> = {};
  let sampledEvents = 0;
  let retiredWithJob = 0;
  for (const r of sample) {
    const events: HistoryEvent[] = (await c.workflow.getHandle(r.workflowId, r.runId).fetchHistory()).events ?? [];
    sampledEvents += events.length;
    const scheduled = new Map<string, string>();
    let waitCancelled = false;
    for (const e of events) {
      const type = eventTypeOf(e);
      eventTypes[type] = (eventTypes[type] ?? 0) + 1;
      const name = e.activityTaskScheduledEventAttributes?.activityType?.name;
      if (name) {
        scheduled.set(String(e.eventId), name);
        activityTypes[name] = (activityTypes[name] ?? 0) + 1;
      }
      const cancel = e.activityTaskCancelRequestedEventAttributes;
      if (cancel && scheduled.get(String(cancel.scheduledEventId)) === 'awaitJobStart') waitCancelled = true;
    }
    if (waitCancelled) retiredWithJob++;
  }
  const perSample = (o: Record<string, number>) => {
    for (const k of Object.keys(o)) o[k] = r1(o[k]! / Math.max(1, sample.length))!;
  };
  perSample(eventTypes);
  perSample(activityTypes);
  return { size: sample.length, events: sampledEvents, retiredWithJob, eventTypes, activityTypes };
}

/** Lets the phase settle: waits (up to SETTLE_MS) until no more than its warm runners are open. */
async function settle(bench: Bench, c: Client, p: PhaseSpec): Promise<void> {
  const settleUntil = performance.now() + SETTLE_MS;
  const idleTarget = p.poolIds.length > 0 ? bench.opts.minIdle * p.poolIds.length : bench.opts.warm;
  while (performance.now() < settleUntil) {
    const open = [...(await openRunners(c)).keys()].filter(p.ownsRunner);
    if (open.length <= idleTarget) break;
    await bench.pause(500);
  }
}

/** Every runner's outcome once settled: those started in the window, and the warm ones open when it began. */
async function settledOutcomesOf(c: Client, p: PhaseSpec, fromWall: number): Promise<Record<string, number>> {
  const settledOutcomes: Record<string, number> = {};
  for await (const wf of c.workflow.list({ query: "WorkflowType = 'RunnerWorkflow'" })) {
    const startedIn = wf.startTime.getTime() >= fromWall - 50;
    const openAtStart = (wf.closeTime?.getTime() ?? Infinity) >= fromWall;
    if (!p.ownsRunner(wf.workflowId) || !(startedIn || openAtStart)) continue;
    const outcome = await outcomeOf(c, wf.workflowId, wf.runId, wf.status.name);
    settledOutcomes[outcome] = (settledOutcomes[outcome] ?? 0) + 1;
  }
  return settledOutcomes;
}
