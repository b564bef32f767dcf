/**
 * Picks and builds the VM driver a host uses, from its (already validated) settings.
 */
import { FakeDriver } from './fake.js';
import { join } from 'node:path';
import { QemuDriver, type QemuOciOptions } from './qemu.js';
import { TartDriver } from './tart.js';
import type { VmDriver } from './types.js';

export type DriverSettings =
  | { kind: 'fake'; root: string; images: Record<string, string>; bootDelayMs?: number }
  | { kind: 'qemu'; root: string; imagesDir: string; accel?: 'auto' | 'kvm' | 'tcg'; cpu?: number; memoryMb?: number; maxRunning?: number }
  | {
      kind: 'tart';
      root: string;
      tartBinary?: string;
      tartHome?: string;
      insecureRegistries?: boolean;
      username?: string;
      /** Guest password (Cirrus Labs images: admin); read from the environment by the config parser. */
      password?: string;
      registryUsername?: string;
      registryPassword?: string;
      maxRunning?: number;
    };

/**
 * What a driver needs besides its settings: objects made at run time (the host's image cache,
 * the registry endpoint with its password in memory), never part of a config file.
 */
export interface DriverRuntime {
  /** QEMU: registry images (`HOST/REPO@sha256:…`) served from this image cache. */
  qemuOci?: QemuOciOptions;
}

export function createDriver(settings: DriverSettings, runtime: DriverRuntime = {}): VmDriver {
  switch (settings.kind) {
    case 'fake':
      return new FakeDriver({ root: settings.root, images: settings.images, bootDelayMs: settings.bootDelayMs });
    case 'qemu':
      return new QemuDriver({
        root: settings.root,
        imagesDir: settings.imagesDir,
        accel: settings.accel,
        cpu: settings.cpu,
        memoryMb: settings.memoryMb,
        maxRunning: settings.maxRunning,
        ...(runtime.qemuOci ? { oci: runtime.qemuOci } : {}),
      });
    case 'tart':
      return new TartDriver({
        tartBinary: settings.tartBinary,
        tartHome: settings.tartHome,
        insecureRegistries: settings.insecureRegistries,
        username: settings.username,
        password: settings.password,
        registryUsername: settings.registryUsername,
        registryPassword: settings.registryPassword,
        // Apple's licence and Virtualization.framework: 2 macOS guests per Mac.
        maxRunning: settings.maxRunning ?? 2,
        logDir: join(settings.root, 'logs'),
        stateDir: join(settings.root, 'state'),
      });
  }
}
