/**
 * TEST INFRASTRUCTURE. An activity interceptor used by the durability tests: after the named
 * activity has done its work, but before its completion reaches the server, it announces
 * itself on stderr and holds (heartbeating), so the test can SIGKILL the worker at exactly the
 * worst moment — side effect done, result lost — and check the retry is harmless.
 * Enabled only by a worker config's `testing.pauseAfter`.
 */
import { Context } from '@temporalio/activity';
import type { ActivityInboundCallsInterceptorFactory } from '@temporalio/worker';

export const PAUSE_MARKER = 'EKIDEN_TEST_PAUSED_AFTER';

export function pauseAfterActivities(names: string[]): ActivityInboundCallsInterceptorFactory {
  const wanted = new Set(names);
  return (ctx) => ({
    async execute(input, next) {
      const result = await next(input);
      const type = ctx.info.activityType;
      if (wanted.has(type)) {
        process.stderr.write(`${PAUSE_MARKER} ${type} ${ctx.info.workflowExecution?.workflowId}\n`);
        const current = Context.current();
        for (;;) {
          current.heartbeat();
          await new Promise((r) => setTimeout(r, 200));
        }
      }
      return result;
    },
  });
}
