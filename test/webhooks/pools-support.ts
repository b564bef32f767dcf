/**
 * What the receiver suites share: unique names, and starting a stand-in pool that the
 * receiver's pool listing already sees and that answers its status query.
 */
import type { Client, WorkflowHandle } from '@temporalio/client';
import { poolWorkflowId } from '../../core/names.js';
import { POOL_LIST_QUERY } from '../../webhooks/pools.js';
import { poolStatusQuery } from '../../workflows/api.js';
import { waitUntil } from '../support/wait.js';
import type { FakePoolInput } from './fake-pool-workflow.js';

export function uniq(prefix: string): string {
  return `${prefix}-${Math.random().toString(36).slice(2, 8)}`;
}

/** Starts stand-in pools on `taskQueue`, remembering each handle in `handles` for cleanup. */
export function poolStarter(client: () => Client, taskQueue: string, handles: WorkflowHandle[]) {
  return async (input: FakePoolInput): Promise<WorkflowHandle> => {
    const workflowId = poolWorkflowId(input.name);
    const handle = await client().workflow.start('PoolWorkflow', { taskQueue, workflowId, args: [input] });
    handles.push(handle);
    await waitUntil(
      async () => {
        let listed = false;
        for await (const _ of client().workflow.list({ query: `${POOL_LIST_QUERY} AND WorkflowId = '${workflowId}'` })) listed = true;
        return listed && (await handle.query(poolStatusQuery)).pool === input.name;
      },
      (ok) => ok,
      20_000,
      `pool ${input.name} visible and answering`,
    );
    return handle;
  };
}
