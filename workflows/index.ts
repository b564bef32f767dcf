export { RunnerWorkflow } from './runner.js';
export { PoolWorkflow } from './pool.js';
export { HostWorkflow } from './host.js';
export { ImageCatalogWorkflow } from './image-catalog.js';
export { ImageBuildWorkflow } from './image-build.js';
export { FleetRoundWorkflow } from './fleet.js';
