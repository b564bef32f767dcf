/**
 * Picks and builds the VM driver a host uses, from its (already validated) settings.
 */
import { FakeDriver } from './fake.js';
import { QemuDriver } from './qemu.js';
import type { VmDriver } from './types.js';

export type DriverSettings =
  | { kind: 'fake'; root: string; images: Record<string, string>; bootDelayMs?: number }
  | { kind: 'qemu'; root: string; imagesDir: string; accel?: 'auto' | 'kvm' | 'tcg'; cpu?: number; memoryMb?: number; maxRunning?: number };

export function createDriver(settings: DriverSettings): VmDriver {
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
      });
  }
}
