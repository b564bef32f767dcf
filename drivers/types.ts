/**
 * The VM runtime as Ekiden sees it: a small interface with one implementation per
 * hypervisor (Tart on macOS, QEMU on Linux) and a fake one for tests and demos.
 *
 * Contract for every implementation:
 * - Every method takes one object parameter and honours `signal` where given.
 * - Every method is idempotent: cloning a VM that exists, starting a running VM, stopping a
 *   stopped or missing VM and deleting a missing VM all succeed.
 * - `list` returns only VMs whose names `parseVmName` accepts (Ekiden's own).
 * - Errors are `DriverError`s with a stable `code`.
 */

export interface SshEndpoint {
  host: string;
  port: number;
  username: string;
  password?: string;
  /** PEM/OpenSSH private key text. */
  privateKey?: string;
  /**
   * Host key fingerprint (sha256, base64) the guest must present. The driver records it
   * at clone time when it knows it (fake, QEMU with a generated key); otherwise the first
   * key seen is pinned for that VM only.
   */
  hostKeySha256?: string;
}

export type VmState = 'stopped' | 'running';

export interface VmInfo {
  name: string;
  state: VmState;
  /** Image the VM was cloned from. */
  image?: string;
}

export interface ImageInfo {
  image: string;
  /** Content digest, e.g. `sha256:…`. */
  digest: string;
}

export interface VmDriver {
  readonly kind: 'fake' | 'qemu' | 'tart';
  /** The image as cached on this host, or undefined when it is not cached. */
  localImage(args: { image: string }): Promise<ImageInfo | undefined>;
  /** Fetch (or refresh) the image into the host's cache. */
  pullImage(args: { image: string; signal?: AbortSignal }): Promise<ImageInfo>;
  /** Copy-on-write clone of a cached image into a new, stopped VM. */
  clone(args: { image: string; name: string; cpu?: number; memoryMb?: number; signal?: AbortSignal }): Promise<void>;
  /** Boot the VM detached from the calling process: it outlives the worker. */
  start(args: { name: string; signal?: AbortSignal }): Promise<void>;
  /** Wait until the VM has an address and return how to reach its SSH server. */
  sshEndpoint(args: { name: string; timeoutMs: number; signal?: AbortSignal }): Promise<SshEndpoint>;
  /** Graceful stop, forced after `timeoutMs`. Missing or stopped VMs succeed. */
  stop(args: { name: string; timeoutMs?: number; signal?: AbortSignal }): Promise<void>;
  /** Remove the VM and every file that belongs to it. Missing VMs succeed. */
  delete(args: { name: string; signal?: AbortSignal }): Promise<void>;
  /** Ekiden's VMs on this host. */
  list(args?: { signal?: AbortSignal }): Promise<VmInfo[]>;
  /** State of one VM, or undefined when it does not exist. */
  get(args: { name: string; signal?: AbortSignal }): Promise<VmInfo | undefined>;
}

export type DriverErrorCode =
  | 'not-found' // VM or image does not exist where it must
  | 'capacity' // host cannot run another VM
  | 'timeout' // deadline passed (boot, ip)
  | 'invalid' // bad arguments
  | 'auth' // the image source refused the credentials or is not trusted: final until the setting is fixed
  | 'unavailable' // the image source cannot be reached or failed: retried with backoff
  | 'cache-full' // the host's image cache has no room for the image: final
  | 'failed'; // anything else

export class DriverError extends Error {
  override readonly name = 'DriverError';
  readonly code: DriverErrorCode;
  constructor(code: DriverErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}
