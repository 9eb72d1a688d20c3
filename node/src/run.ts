// run: keep one function running as the single active instance.

import type { Client } from "./connect.js";
import { LeaseLost } from "./errors.js";
import { type Lease, type LeaseOptions, acquire } from "./lease.js";
import { log } from "./log.js";

/** Waits for the lease on `key`, calls `fn(lease)` while holding it, and
 * resolves to what it returns (releasing first; also when it throws). When
 * `fn` throws a LeaseLost (`lease.check()`, `lease.signal.throwIfAborted()`,
 * a NotHeld from `lease.fenced`), or rejects with anything after the lease
 * was lost (an AbortError of work given `lease.signal`), waits for the lease
 * again and calls `fn` again. A FatalError rejects at once. */
export async function run<T>(client: Client, key: string, fn: (lease: Lease) => Promise<T> | T, opts: LeaseOptions = {}): Promise<T> {
  for (;;) {
    const lease = await acquire(client, key, opts);
    try {
      return await fn(lease);
    } catch (err) {
      const lost = err instanceof LeaseLost || (lease.lost && lease.lostReason !== "released");
      if (!lost) throw err;
      log.warn(`waiting for ${key} again`);
    } finally {
      await lease.release();
    }
  }
}
