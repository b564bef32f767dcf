// Every workflow a worker serves; bundled ahead of time into dist/workflow-bundle.js.
export { RunnerWorkflow, runnerStatusQuery, jobAssignedSignal } from './runner.js';
export { PoolWorkflow, poolStatusQuery, drainSignal } from './pool.js';
