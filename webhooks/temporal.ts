/**
 * The receiver's Temporal calls, each bounded in time. The SDK's deadline alone is not a
 * bound: its gRPC retry interceptor backs off (up to 5 s a wait) on UNAVAILABLE and starts the
 * next attempt after the deadline has passed, so a delivery with a 15 s deadline answered after
 * ~18 s, past GitHub's 10 s. Here the calls get the deadline and an abort signal, and the
 * caller gets its answer when the time is up whatever the SDK is still doing.
 */
import { isGrpcServiceError, ServiceError, type Client } from '@temporalio/client';
import { errorMessage } from '../core/failures.js';

/** Temporal did not answer within the budget. */
export class TemporalTimeoutError extends Error {
  override readonly name = 'TemporalTimeoutError';
  constructor(readonly what: string, readonly ms: number) {
    super(`${what}: no answer from Temporal within ${ms / 1000}s`);
  }
}

/**
 * Bounded Temporal calls, and the ones still running after their caller was answered. A call
 * given up on is aborted, but an SDK retry already waiting on its backoff timer still fires
 * (and fails at once, past its deadline): drain() before closing the connection, or that
 * retry throws "Channel has been shut down" from a timer, out of reach of any catch.
 */
export class TemporalCalls {
  private readonly pending = new Set<Promise<unknown>>();

  /** Calls started and not settled yet, those given up on included. */
  get inFlight(): number {
    return this.pending.size;
  }

  /**
   * `fn`'s Temporal calls with a deadline `ms` from now (calls made after it fail at once) and
   * an abort signal (cancels the calls in flight when time is up); rejects with a
   * TemporalTimeoutError at `ms` even when the SDK has not given up yet.
   */
  async bounded<T>(client: Client, ms: number, what: string, fn: () => Promise<T>): Promise<T> {
    const controller = new AbortController();
    let timer: NodeJS.Timeout | undefined;
    const expired = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => {
        controller.abort();
        reject(new TemporalTimeoutError(what, ms));
      }, ms);
    });
    const work = client.withDeadline(Date.now() + ms, () => client.withAbortSignal(controller.signal, fn));
    const settled = work.then(
      () => undefined,
      () => undefined,
    );
    this.pending.add(settled);
    void settled.then(() => this.pending.delete(settled));
    try {
      return await Promise.race([work, expired]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Waits until every call has settled, at most `timeoutMs`; whether they all did. */
  async drain(timeoutMs: number): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<false>((resolve) => {
      timer = setTimeout(() => resolve(false), timeoutMs);
    });
    try {
      while (this.pending.size > 0) {
        if ((await Promise.race([Promise.all([...this.pending]).then(() => true as const), timeout])) === false) return false;
      }
      return true;
    } finally {
      clearTimeout(timer);
    }
  }
}

/** Whether `err` says Temporal could not be reached or did not answer (rather than a bug of ours). */
export function isTemporalUnavailable(err: unknown): boolean {
  return err instanceof TemporalTimeoutError || err instanceof ServiceError || isGrpcServiceError(err);
}

/** One line on why Temporal failed, for logs and /healthz (no payloads, no secrets). */
export function temporalReason(err: unknown): string {
  const cause = err instanceof ServiceError && err.cause !== undefined ? `: ${errorMessage(err.cause).split('\n')[0]}` : '';
  return `${errorMessage(err).split('\n')[0]}${cause}`;
}
