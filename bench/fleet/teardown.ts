/**
 * bench:fleet's teardown, after the phases or an error or an interruption: pools cancelled
 * (their runners deregister and delete their VMs), remaining runners cancelled, leftovers
 * counted and printed — fake VM processes, VM directories, emulator runner registrations,
 * open RunnerWorkflows — then workers, receiver, emulator and server stopped, stray fake VM
 * processes killed and the temp dir removed. Each step has a time limit; a failed one is
 * printed and the next one runs.
 */
import { WorkflowNotFoundError } from '@temporalio/client';
import { rmSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { poolWorkflowId } from '../../core/names.js';
import { closeServer } from '../../webhooks/server.js';
import { within, type Bench } from './context.js';
import type { Resources } from './infra.js';
import { guestPidsUnder } from './measure.js';
import { cancelRunners, openRunners } from './temporal.js';
import { errorMessage } from '../../core/failures.js';

/** What was left after cleanup; -1 when it could not be counted. */
export interface Leftovers {
  fakeVmProcesses: number;
  vmDirs: number;
  registrations: number;
  openRunners: number;
}

export async function tearDown(bench: Bench, res: Resources, poolNames: string[]): Promise<Leftovers> {
  const { dir, log } = bench;
  const { t } = log;
  log.stage = 'cleanup';
  const leftovers: Leftovers = { fakeVmProcesses: -1, vmDirs: -1, registrations: -1, openRunners: -1 };
  const step = async (what: string, ms: number, work: () => Promise<unknown>) => {
    try {
      await within(ms, what, work);
    } catch (err) {
      console.log(`${t()}  cleanup: ${what}: ${errorMessage(err)}`);
    }
  };
  const c = res.client;
  if (c) {
    if (res.poolsStarted) {
      console.log(`${t()}  cleanup: cancelling ${bench.opts.pools} pool(s); their runners deregister and delete their VMs`);
      await step('pools', 120_000, () =>
        Promise.all(
          poolNames.map(async (name) => {
            const handle = c.workflow.getHandle(poolWorkflowId(name));
            await handle.cancel().catch((err: unknown) => {
              if (!(err instanceof WorkflowNotFoundError)) throw err;
            });
            await handle.result().catch(() => {});
          }),
        ),
      );
    }
    await step('remaining runners', 90_000, () => cancelRunners(c, () => true, 90_000));
    await step('leftover count', 30_000, async () => {
      for (let i = 0; i < 40 && guestPidsUnder(dir).length > 0; i++) await sleep(250);
      leftovers.fakeVmProcesses = guestPidsUnder(dir).length;
      let vms = 0;
      for (const d of res.drivers) vms += (await d.list()).length;
      leftovers.vmDirs = vms;
      leftovers.registrations = res.emulator?.runners().length ?? -1;
      leftovers.openRunners = (await openRunners(c)).size;
    });
  }
  console.log(
    `${t()}  leftovers: ${leftovers.fakeVmProcesses} fake VM process(es), ${leftovers.vmDirs} VM dir(s), ` +
      `${leftovers.registrations} emulator runner registration(s), ${leftovers.openRunners} open RunnerWorkflow(s)`,
  );
  await step('workers', 60_000, () => res.workers.stop(() => true));
  const server = res.webhookServer;
  if (server) await step('webhook receiver', 10_000, () => closeServer(server));
  for (const closer of res.closers.reverse()) await step(closer.what, 30_000, closer.run);
  const strays = guestPidsUnder(dir);
  for (const pid of strays) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone already
    }
  }
  if (strays.length > 0) console.log(`${t()}  cleanup: killed ${strays.length} stray fake VM process(es) by pid`);
  rmSync(dir, { recursive: true, force: true });
  return leftovers;
}
