/** Assertion helpers for promises that must reject. */
import { expect } from 'vitest';
import { DriverError } from '../../drivers/types.js';

/** The error `p` rejects with; fails the test when it resolves. */
export async function rejection(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (err) {
    return err;
  }
  throw new Error('expected a rejection');
}

/** The DriverError `p` rejects with; fails the test on anything else. */
export async function driverError(p: Promise<unknown>): Promise<DriverError> {
  const err = await rejection(p);
  expect(err).toBeInstanceOf(DriverError);
  return err as DriverError;
}
