import type { VersioningBehavior, WorkflowDefinitionOptions } from '@temporalio/common';
import { setWorkflowOptions, workflowInfo } from '@temporalio/workflow';
import { FleetRoundWorkflow } from './fleet.js';
import { HostWorkflow } from './host.js';
import { ImageBuildWorkflow } from './image-build.js';
import { ImageCatalogWorkflow } from './image-catalog.js';
import { PoolWorkflow } from './pool.js';
import { RunnerWorkflow } from './runner.js';

export { FleetRoundWorkflow, HostWorkflow, ImageBuildWorkflow, ImageCatalogWorkflow, PoolWorkflow, RunnerWorkflow };

// Worker Versioning (docs/upgrades.md), for control-plane workers that join a Worker Deployment;
// an unversioned worker must not say one (the server refuses the task), hence the getter. A workflow with a bounded life stays on the version it started
// on, so a release may change its steps freely. A long-lived one moves to the current version at
// its next task, so a release changes it only through patched() (the replay fixtures hold it to
// that). Continue-as-new onto the new version is not honoured for pinned workflows by Temporal
// 1.29 (the dev server of CLI 1.5.1): the run stays pinned, which is why pools are not pinned.
export function versioned(behavior: VersioningBehavior): () => WorkflowDefinitionOptions {
  // An unversioned worker has a build id too, with an empty deployment name.
  return () => (workflowInfo().currentDeploymentVersion?.deploymentName ? { versioningBehavior: behavior } : {});
}
setWorkflowOptions(versioned('PINNED'), RunnerWorkflow);
setWorkflowOptions(versioned('PINNED'), ImageBuildWorkflow);
setWorkflowOptions(versioned('PINNED'), FleetRoundWorkflow);
setWorkflowOptions(versioned('AUTO_UPGRADE'), PoolWorkflow);
setWorkflowOptions(versioned('AUTO_UPGRADE'), HostWorkflow);
setWorkflowOptions(versioned('AUTO_UPGRADE'), ImageCatalogWorkflow);
