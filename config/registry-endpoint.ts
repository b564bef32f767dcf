/**
 * The fleet file's `registry:` section as the registry client's endpoint, with its password
 * read now (from the env var or file the section names) and held in memory only. The
 * credential's source ("registry.passwordEnv EKIDEN_REGISTRY_PASSWORD") goes with it, so a
 * refused login names the setting to fix, never the secret.
 */
import type { RegistryEndpoint } from '../registry/client.js';
import { resolveRegistryPassword, type RegistrySettings } from './images.js';

export function registryEndpoint(settings: RegistrySettings, env: Record<string, string | undefined>): RegistryEndpoint {
  const endpoint: RegistryEndpoint = { url: settings.url, insecure: settings.insecure };
  if (settings.caFile) endpoint.caFile = settings.caFile;
  if (settings.username) endpoint.username = settings.username;
  const password = resolveRegistryPassword(settings, env);
  if (password !== undefined) endpoint.password = password;
  const source = settings.passwordEnv ? `registry.passwordEnv ${settings.passwordEnv}` : settings.passwordFile ? `registry.passwordFile ${settings.passwordFile}` : undefined;
  if (source) endpoint.credentialSource = source;
  return endpoint;
}
