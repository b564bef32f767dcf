/**
 * bench:fleet's baseline phase, run first, before the fleet exists: ONE host worker serving
 * both queues, no PoolWorkflow, no HostWorkflow, no webhooks. It keeps as many runners warm as
 * the fleet will (pools × min-idle) and starts one RunnerWorkflow directly for every job it
 * queues — a pool's steady-state policy without the machinery. Its host goes away afterwards.
 */
import { runnerWorkflowId, SHARED_TASK_QUEUE } from '../../core/names.js';
import { RunnerPhase, SA_HOST, SA_PHASE, SA_POOL } from '../../core/search-attributes.js';
import type { RunnerWorkflow } from '../../workflows/runner.js';
import type { Bench } from './context.js';
import { IMAGE, TIMING, waitWarm, type Infra, type Resources } from './infra.js';
import { r1 } from './measure.js';
import { runPhase, type JobBook, type PhaseResult } from './phase.js';
import { cancelRunners } from './temporal.js';
import { errorMessage } from '../../core/failures.js';

const BASE_HOST = 'base';
const BASE_POOL = 'base';

/** Starts the baseline's host worker and warm runners, then runs the phase. */
export async function runBaseline(bench: Bench, infra: Infra, res: Resources, book: JobBook): Promise<PhaseResult> {
  const { client: c, emu } = infra;
  const { warm } = bench.opts;
  bench.log.stage = 'baseline';
  const baseDriver = await infra.newDriver(BASE_HOST);
  res.workers.start(BASE_HOST, await infra.hostWorker(BASE_HOST, baseDriver, { serveShared: true, fleet: false }));
  const labels = ['self-hosted', 'bench-base'];
  let seq = 0;
  const startRunner = () =>
    c.workflow.start<typeof RunnerWorkflow>('RunnerWorkflow', {
      workflowId: runnerWorkflowId(BASE_POOL, ++seq),
      taskQueue: SHARED_TASK_QUEUE,
      args: [{ spec: { pool: BASE_POOL, host: BASE_HOST, image: IMAGE, labels, runnerGroupId: 1, runnerDir: 'actions-runner', credential: 'jit' }, timing: TIMING }],
      typedSearchAttributes: [
        { key: SA_POOL, value: BASE_POOL },
        { key: SA_HOST, value: BASE_HOST },
        { key: SA_PHASE, value: RunnerPhase.Pulling },
      ],
    });
  for (let i = 0; i < warm; i++) await startRunner();
  await waitWarm(bench, emu, `ekiden-${BASE_POOL}-`, warm);
  bench.log.say(`baseline: host ${BASE_HOST} with ${warm} warm runner(s); queueing jobs`);
  const starts: Array<Promise<unknown>> = [];
  const result = await runPhase(bench, infra, book, {
    name: 'baseline',
    labelsFor: () => labels,
    onQueued: () => starts.push(startRunner().catch((err: unknown) => bench.log.noteWarning(`baseline start: ${errorMessage(err)}`))),
    ownsRunner: (id) => id.startsWith(runnerWorkflowId(BASE_POOL, '')),
    runnerPrefixes: [`ekiden-${BASE_POOL}-`],
    poolIds: [],
    hostIds: [],
  });
  await Promise.all(starts);
  return result;
}

/** The warm runners left over end here, outside the window; then the host goes away. */
export async function endBaseline(bench: Bench, infra: Infra, res: Resources, result: PhaseResult): Promise<void> {
  bench.log.stage = 'baseline cleanup';
  await cancelRunners(infra.client, (id) => id.startsWith(runnerWorkflowId(BASE_POOL, '')), 60_000);
  await res.workers.stop((id) => id === BASE_HOST);
  bench.log.say(`baseline: done in ${r1(result.windowS)} s; its worker stopped`);
}
