/**
 * What bench:fleet reads and does through Temporal's client, outside any phase's measurement
 * logic: the open RunnerWorkflows, cancelling runners until they have closed, a runner's
 * outcome, and the history length of a set of workflows (every run, continue-as-new included).
 */
import type { Client } from '@temporalio/client';
import { setTimeout as sleep } from 'node:timers/promises';
import { runToken } from '../../core/names.js';
import type { RunnerWorkflow } from '../../workflows/runner.js';

/** Open RunnerWorkflows: workflow id → run token. */
export async function openRunners(c: Client): Promise<Map<string, string>> {
  const open = new Map<string, string>();
  for await (const wf of c.workflow.list({ query: "WorkflowType = 'RunnerWorkflow' AND ExecutionStatus = 'Running'" })) open.set(wf.workflowId, runToken(wf.runId));
  return open;
}

/** Cancels the open RunnerWorkflows `which` selects and waits until they have closed. */
export async function cancelRunners(c: Client, which: (workflowId: string) => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const cancelled = new Set<string>();
  for (;;) {
    const open = [...(await openRunners(c)).keys()].filter(which);
    if (open.length === 0) return;
    if (Date.now() > deadline) throw new Error(`${open.length} runner(s) still open after ${timeoutMs / 1000} s: ${open.slice(0, 5).join(', ')}`);
    for (const id of open.filter((x) => !cancelled.has(x))) {
      cancelled.add(id);
      await c.workflow.getHandle(id).cancel().catch(() => {});
    }
    await sleep(250);
  }
}

/** Total history events of every run of these workflow ids (continue-as-new included). */
export async function historyTotal(c: Client, ids: string[]): Promise<number> {
  let total = 0;
  for (const id of ids) {
    for await (const wf of c.workflow.list({ query: `WorkflowId = '${id}'` })) {
      // A running execution's visibility record may lag; describe reads its mutable state.
      if (wf.status.name === 'RUNNING') total += (await c.workflow.getHandle(id, wf.runId).describe()).historyLength;
      else total += wf.historyLength;
    }
  }
  return total;
}

/** A closed runner's outcome: its result's for a completed one, else its status (`cancelled`, `failed`, …). */
export async function outcomeOf(c: Client, workflowId: string, runId: string, status: string): Promise<string> {
  const outcome = status.toLowerCase();
  if (status !== 'COMPLETED') return outcome;
  return c.workflow
    .getHandle<typeof RunnerWorkflow>(workflowId, runId)
    .result()
    .then((x) => x.outcome, () => outcome);
}
