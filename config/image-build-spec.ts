/**
 * The fleet file's `images:` entry (config/images.ts ImageSpec) as what one build runs
 * (workflows/api.ts ImageBuildSpec), resolved at the edge — by `ekiden image apply|build` on
 * the operator's machine. No secret crosses: a Packer variable the file writes as
 * `{ env: NAME }` is passed by name in `variablesFromEnv` and read on the build host when the
 * build runs (config/images.ts resolveImageVariables), never here.
 */
import type { ImageBuildSpec } from '../workflows/api.js';
import type { ImageSpec, RegistrySettings } from './images.js';

export function imageBuildSpec(spec: ImageSpec, registry: RegistrySettings): ImageBuildSpec {
  const variables: ImageBuildSpec['variables'] = {};
  const variablesFromEnv: ImageBuildSpec['variablesFromEnv'] = {};
  for (const [key, value] of Object.entries(spec.variables)) {
    // defineProperty: a variable named __proto__ stays an own property, as the parser keeps it.
    if (typeof value === 'object' && !Array.isArray(value)) Object.defineProperty(variablesFromEnv, key, { value: value.env, enumerable: true, writable: true, configurable: true });
    else Object.defineProperty(variables, key, { value, enumerable: true, writable: true, configurable: true });
  }
  const base: ImageBuildSpec['base'] = {};
  if (spec.base.ref !== undefined) base.ref = spec.base.ref;
  if (spec.base.digest !== undefined) base.digest = spec.base.digest;
  return {
    name: spec.name,
    kind: spec.kind,
    template: spec.template,
    variables,
    variablesFromEnv,
    base,
    registry: registry.host,
    repository: spec.repository,
    buildHosts: [...spec.buildHosts],
    buildTimeoutMs: spec.buildTimeoutMs,
    smokeTimeoutMs: spec.smokeTest.timeoutMs,
    promote: spec.promote,
    keep: spec.keep,
  };
}
