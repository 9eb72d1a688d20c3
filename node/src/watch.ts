// watch: every change of a lock's holder, without polling and without gaps.

import type { Redis } from "ioredis";
import { type Client, MasterAsker, connectionName, dedicated, defaultOwner, isCluster, isSentinel, maskedUrl, sleep, timed } from "./connect.js";
import { FatalError, errorText, fatalHint, isTransient } from "./errors.js";
import { type Info, asInfo, seen as seenOf } from "./info.js";
import { Backoff, Outage } from "./log.js";

export interface WatchOptions {
  /** The token last seen held (0: none; on a lock of limit > 1, INFO's
   * `token` last seen): the first item comes when it differs. Default: the
   * current INFO comes first. */
  seen?: number;
  /** Ends the iteration (the waiting connection is closed). */
  signal?: AbortSignal;
}

const SETUP_MS = 5000;

/** Yields the lock's INFO (null when the key does not exist) now and at
 * every change of holder (on a lock of limit > 1: at every grant and lease
 * end; `limit` and `holders` say how many may and do hold), until the loop
 * is left or `signal` aborts. Uses HBLOCK.WATCH with the token last seen, on a connection of its own (named
 * `hblock:watch:host:pid:random`), so no change of holder is missed.
 * Transient errors are retried with backoff (logged once when they start
 * and once when they end); a fatal one throws FatalError. */
export async function* watch(client: Client, key: string, opts: WatchOptions = {}): AsyncGenerator<Info | null, void, undefined> {
  const name = connectionName(`watch:${defaultOwner()}`);
  const url = maskedUrl(client);
  const outage = new Outage(key, url);
  const backoff = new Backoff(2000);
  const sentinel = isSentinel(client);
  const asker = sentinel ? new MasterAsker(client) : null;
  const signal = opts.signal;
  let seen: number | null = opts.seen ?? null;
  let conn: Redis | null = null;
  const abort = () => conn?.disconnect();
  signal?.addEventListener("abort", abort, { once: true });
  try {
    for (;;) {
      if (signal?.aborted) return;
      let reply: unknown;
      try {
        if (conn && asker && (await asker.moved(conn, SETUP_MS))) {
          conn.disconnect();
          conn = null;
        }
        if (conn === null) {
          conn = await dedicated(client, key, name, SETUP_MS);
          outage.ok();
        }
        // Aborted while connecting: the blocking WATCH is never sent.
        if (signal?.aborted) return;
        if (seen === null) reply = await timed(conn, conn.call("HBLOCK.INFO", key), SETUP_MS);
        else if (sentinel) reply = await timed(conn, conn.call("HBLOCK.WATCH", key, "SEEN", seen, "TIMEOUT", 1000), 1000 + SETUP_MS);
        else reply = await conn.call("HBLOCK.WATCH", key, "SEEN", seen);
      } catch (err) {
        if (signal?.aborted) return;
        const hint = fatalHint(err, isCluster(client));
        if (hint !== null) throw new FatalError(key, url, errorText(err), hint, { cause: err });
        if (!isTransient(err, isCluster(client))) throw err;
        outage.failed(err);
        conn?.disconnect();
        conn = null;
        await sleep(backoff.next(), signal);
        continue;
      }
      outage.ok();
      backoff.reset();
      const info = asInfo(reply);
      if (seen !== null && seenOf(info) === seen) continue;
      seen = seenOf(info);
      yield info;
    }
  } finally {
    signal?.removeEventListener("abort", abort);
    outage.end();
    conn?.disconnect();
    asker?.close();
  }
}
