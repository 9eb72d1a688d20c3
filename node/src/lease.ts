// A heartbeat lease: acquire (waiting in the server's FIFO queue), beat on
// a connection of its own, release. The fault policy is the CLI's and the
// Python package's (python/src/hblock/_lease.py):
//
// The lease counts from the send time of the last acknowledged beat; the
// server ends it `intervalMs * misses` later. `validUntil` is that minus a
// margin (a quarter interval, 200 ms at most), on the performance.now()
// clock; `signal` is aborted at validUntil unless a beat was acknowledged
// meanwhile. Until then transient errors are retried on a new connection
// with backoff (never slower than interval / 2), logged once when beats
// start failing and once when they succeed again. NOTHELD, a fatal error,
// or validUntil passing makes the lease lost.
//
// Bound (bindMs, 100 by default): acquired with BIND and bound to the
// connection it beats on, so when this process dies the server releases it
// bindMs later. Between beats the loop waits in HBLOCK.WATCH on that
// connection: a dropped connection is noticed at once and re-bound from a
// new one (the holder's ACQUIRE ... BIND, same token) within the grace.

import type { Redis } from "ioredis";
import {
  type Client, MasterAsker, connectionName, dedicated, defaultOwner, instanceOwner, isCluster, isSentinel, maskedUrl, sleep,
  timed,
} from "./connect.js";
import {
  FatalError, LeaseLost, NotAcquired, NotHeld, errorText, fatalHint, isNotHeld, isTransient,
} from "./errors.js";
import { asInfo, heldBackMs, holder, notGranted, seen } from "./info.js";
import { Backoff, Outage, log } from "./log.js";

export interface LeaseOptions {
  /** Who holds it; a unique part is appended (`web-1` -> `web-1/4f3a9c0d`).
   * Default: `host:pid:random`. */
  owner?: string;
  /** Heartbeat interval, 1 to 86400000 ms (default 1000). */
  intervalMs?: number;
  /** Missed beats allowed, 1 to 10000 (default 3). */
  misses?: number;
  /** How long to wait in the server's queue: undefined or Infinity (the
   * default) without limit, 0 to try once. */
  waitMs?: number;
  /** The grace after this process's connection closes (default 100; null:
   * not bound); capped at intervalMs * misses. */
  bindMs?: number | null;
  /** Holders allowed at once (permits), 1 to 1000 (default 1); `LIMIT n` is
   * sent only when not 1. Every holder and waiter of a lock gives the same
   * limit; another is a FatalError. */
  limit?: number;
  /** Aborts the wait (acquire throws the signal's reason). */
  signal?: AbortSignal;
  /** Called once when the lease is lost. */
  onLost?: (lease: Lease) => void;
}

const INTERVAL_MS: [number, number] = [1, 86_400_000];
const MISSES: [number, number] = [1, 10_000];
const LIMIT: [number, number] = [1, 1000];
const LIMIT_MISMATCH = "does not match the lock's limit";

function replyError(text: string): Error {
  const err = new Error(text);
  err.name = "ReplyError";
  return err;
}

function integer(name: string, value: number, [low, high]: [number, number]): number {
  if (!Number.isInteger(value) || value < low || value > high) {
    throw new RangeError(`${name} must be an integer from ${low} to ${high}`);
  }
  return value;
}

export class Lease implements AsyncDisposable {
  readonly key: string;
  readonly owner: string;
  readonly intervalMs: number;
  readonly misses: number;
  readonly bindMs: number | null;
  readonly limit: number;
  /** The masked URL of the client (password as `***`). */
  readonly url: string;
  /** The fencing token (0 until acquired). */
  token = 0;

  private readonly client: Client;
  private readonly name: string;
  private readonly waitMs: number;
  private readonly outage: Outage;
  private readonly onLost: ((lease: Lease) => void) | undefined;
  private readonly controller = new AbortController();
  private readonly stopper = new AbortController();
  private deadline = 0; // performance.now() ms the server-side lease ends (as counted here)
  private timer: NodeJS.Timeout | undefined;
  private reason: string | null = null;
  private released = false;
  private noWatch = false;
  /** HBLOCK.WATCH's SEEN between beats: the token on a plain lock; on
   * limit > 1 the lock's last token issued, as last seen (null: not yet). */
  private seenToken: number | null = null;
  private failing: string | null = null;
  private beater: Redis | null = null;
  private loop: Promise<void> | null = null;
  /** Through Sentinel: asks which master Sentinel names (null otherwise). */
  private readonly asker: MasterAsker | null;

  /** @internal use `acquire(client, key, options)` */
  constructor(client: Client, key: string, opts: LeaseOptions = {}) {
    this.client = client;
    this.key = key;
    this.owner = opts.owner === undefined ? defaultOwner() : instanceOwner(opts.owner);
    this.intervalMs = integer("intervalMs", opts.intervalMs ?? 1000, INTERVAL_MS);
    this.misses = integer("misses", opts.misses ?? 3, MISSES);
    const bind = opts.bindMs === undefined ? 100 : opts.bindMs;
    if (bind !== null && !(Number.isInteger(bind) && bind >= 0)) throw new RangeError("bindMs must be an integer, 0 or more (null: not bound)");
    this.bindMs = bind === null ? null : Math.min(bind, this.intervalMs * this.misses);
    this.limit = integer("limit", opts.limit ?? 1, LIMIT);
    const wait = opts.waitMs ?? Infinity;
    if (!(wait >= 0)) throw new RangeError("waitMs must be 0 or more (Infinity: no limit)");
    this.waitMs = wait;
    this.url = maskedUrl(client);
    this.name = connectionName(this.owner);
    this.outage = new Outage(key, this.url);
    this.onLost = opts.onLost;
    this.asker = isSentinel(client) ? new MasterAsker(client) : null;
  }

  private async moved(conn: Redis, timeoutMs: number): Promise<boolean> {
    return this.asker !== null && (await this.asker.moved(conn, timeoutMs));
  }

  private get leaseMs(): number {
    return this.intervalMs * this.misses;
  }

  private get marginMs(): number {
    return Math.min(this.intervalMs / 4, 200);
  }

  /** Every step before a blocking wait waits this long at most. */
  private get setupMs(): number {
    return Math.min(Math.max(this.intervalMs, 500), 5000);
  }

  private get beatTimeoutMs(): number {
    return Math.max(this.intervalMs, 50);
  }

  // -- state ---------------------------------------------------------------

  /** Aborted, with a LeaseLost (NotHeld after a NOTHELD) as its reason, when
   * the lease is lost, may have ended (validUntil passed without an
   * acknowledged beat), or was released. */
  get signal(): AbortSignal {
    return this.controller.signal;
  }

  /** performance.now() ms until which the lease is valid from this process's
   * view: the send time of the last acknowledged beat + intervalMs * misses,
   * minus a margin (a quarter interval, at most 200 ms). */
  get validUntil(): number {
    return this.deadline - this.marginMs;
  }

  /** True once NOTHELD was answered, the lease was released, or validUntil passed. */
  get lost(): boolean {
    this.noticeLost();
    return this.reason !== null;
  }

  /** Why the lease is lost (null while it is not). */
  get lostReason(): string | null {
    this.noticeLost();
    return this.reason;
  }

  /** Throws the LeaseLost the signal carries unless the lease is held and valid now. */
  check(): void {
    if (this.token === 0) throw new LeaseLost(`${this.key}: not acquired`);
    this.noticeLost();
    if (this.controller.signal.aborted) throw this.controller.signal.reason;
  }

  private lateReason(): string {
    return `no beat acknowledged for ${this.leaseMs / 1000} s (${this.failing ?? "no reply"})`;
  }

  private noticeLost(): void {
    if (this.reason === null && this.deadline > 0 && performance.now() >= this.validUntil) this.markLost(this.lateReason());
  }

  private setDeadline(deadline: number): void {
    this.deadline = deadline;
    clearTimeout(this.timer);
    if (this.reason === null) this.timer = setTimeout(() => this.noticeLost(), Math.max(0, this.validUntil - performance.now()) + 1);
  }

  /** @internal */
  markLost(reason: string, kind: typeof LeaseLost = LeaseLost): void {
    if (this.reason !== null) return;
    this.reason = reason;
    clearTimeout(this.timer);
    // Beating stops: the loop wakes (from its sleep or WATCH) and ends, so a
    // lost lease holds no connection or timer (release() is still welcome).
    this.stopper.abort();
    this.beater?.disconnect();
    log.warn(`lost ${this.key}: ${reason}`);
    this.controller.abort(new kind(`${this.key}: ${reason}`));
    if (this.onLost) {
      const threw = (err: unknown) => log.error(`onLost of ${this.key} threw: ${errorText(err)}`);
      try {
        // An async onLost's rejection is logged too, never left unhandled.
        const result: unknown = this.onLost(this);
        if (result instanceof Promise) result.catch(threw);
      } catch (err) {
        threw(err);
      }
    }
  }

  private fatal(err: unknown): FatalError | null {
    const hint = fatalHint(err, isCluster(this.client));
    return hint === null ? null : new FatalError(this.key, this.url, errorText(err), hint, { cause: err });
  }

  private transient(err: unknown): boolean {
    return isTransient(err, isCluster(this.client));
  }

  // -- acquiring -----------------------------------------------------------

  /** @internal */
  async acquire(signal?: AbortSignal): Promise<this> {
    if (this.token !== 0) throw new Error("this Lease was already acquired");
    signal?.throwIfAborted();
    const end = Number.isFinite(this.waitMs) && this.waitMs > 0 ? performance.now() + this.waitMs : null;
    const waiter: { conn: Redis | null } = { conn: null };
    let granted = false;
    try {
      for (;;) {
        const [token, countedFrom] = await this.grant(waiter, end, signal);
        if (this.bindMs === null) {
          this.token = token;
          this.setDeadline(countedFrom + this.leaseMs);
          break;
        }
        // Move the binding from the waiting connection to the beating one.
        const sent = performance.now();
        try {
          this.token = token;
          this.beater = await dedicated(this.client, this.key, this.name, this.setupMs);
          await this.beatAndRebind(this.beater);
        } catch (err) {
          this.token = 0;
          this.beater?.disconnect();
          this.beater = null;
          try {
            if (waiter.conn) await timed(waiter.conn, waiter.conn.call("HBLOCK.RELEASE", this.key, this.owner, token), this.setupMs);
          } catch {
            // it ends by itself
          }
          if (isNotHeld(err) && this.waitMs !== 0) {
            log.warn(`waiting for ${this.key}: ${errorText(err)}; waiting again`);
            continue;
          }
          if (this.transient(err) && this.waitMs !== 0) {
            this.outage.failed(err);
            waiter.conn?.disconnect();
            waiter.conn = null;
            continue;
          }
          throw this.fatal(err) ?? err;
        }
        this.token = token;
        this.setDeadline(sent + this.leaseMs);
        break;
      }
      granted = true;
    } finally {
      waiter.conn?.disconnect();
      if (!granted) this.asker?.close();
    }
    log.info(`acquired ${this.key} token=${this.token} as ${this.owner}`);
    // Never an unhandled rejection: whatever escapes the loop ends the lease.
    this.loop = this.beatLoop().catch((err: unknown) => {
      log.error(`${this.key}: the beat loop failed: ${errorText(err)}`);
      this.markLost(`the beat loop failed: ${errorText(err)}`);
    });
    return this;
  }

  /** WAIT's argument for the next try: null, try once; 0, no limit. */
  private waitArg(end: number | null): number | null {
    if (this.waitMs === 0) return null;
    if (end === null) return 0;
    const left = end - performance.now();
    if (left <= 0) throw new NotAcquired(`${this.key}: not granted within ${this.waitMs} ms`);
    return Math.max(1, Math.ceil(left));
  }

  private async notAcquired(conn: Redis | null, message: string): Promise<NotAcquired> {
    if (conn === null) return new NotAcquired(message);
    let info;
    try {
      info = asInfo(await timed(conn, conn.call("HBLOCK.INFO", this.key), this.setupMs));
    } catch {
      return new NotAcquired(message);
    }
    const back = heldBackMs(info);
    const reason = info === null ? "missing" : back !== null ? "held-back" : info.state === "held" ? "held" : "free";
    return new NotAcquired(`${message}: ${notGranted(info)}`, reason, back, info);
  }

  private async grant(waiter: { conn: Redis | null }, end: number | null, signal?: AbortSignal): Promise<[number, number]> {
    const backoff = new Backoff(this.intervalMs);
    let heldBackLogged = false;
    for (;;) {
      let arg: number | null;
      try {
        arg = this.waitArg(end);
      } catch (err) {
        if (this.outage.failing) throw new NotAcquired(`${errorText(err)} (${this.url} failing: ${this.outage.last})`);
        throw await this.notAcquired(waiter.conn, errorText(err));
      }
      try {
        signal?.throwIfAborted();
        if (waiter.conn === null) waiter.conn = await dedicated(this.client, this.key, this.name, this.setupMs);
        if (this.outage.failing && !heldBackLogged && arg !== null) heldBackLogged = await this.logHeldBack(waiter.conn);
        return await this.tryGrant(waiter.conn, arg, signal);
      } catch (err) {
        if (signal?.aborted) throw signal.reason;
        if (err instanceof NotAcquired) throw err;
        const found = this.fatal(err);
        if (found) throw found;
        if (arg === null || !(this.transient(err) || isNotHeld(err))) throw err;
        this.outage.failed(err);
        waiter.conn?.disconnect();
        waiter.conn = null;
        await sleep(backoff.next(), signal);
      }
    }
  }

  private async logHeldBack(conn: Redis): Promise<boolean> {
    try {
      const info = asInfo(await timed(conn, conn.call("HBLOCK.INFO", this.key), this.setupMs));
      if (heldBackMs(info) === null) return false;
      log.warn(`waiting for ${this.key}: ${notGranted(info)}`);
      return true;
    } catch {
      return false;
    }
  }

  private async tryGrant(conn: Redis, arg: number | null, signal?: AbortSignal): Promise<[number, number]> {
    const args: (string | number)[] = [this.key, this.owner, "INTERVAL", this.intervalMs, "MISSES", this.misses];
    args.push(...limitArgs(this.limit));
    if (arg !== null) args.push("WAIT", arg);
    if (this.bindMs !== null) args.push("BIND", this.bindMs);
    if (arg !== null) {
      try {
        await timed(conn, conn.call("PING"), this.setupMs);
      } catch (err) {
        if (err instanceof Error && err.name === "ReplyError" && (this.fatal(err) === null || /^NOPERM/.test(err.message))) {
          // an ACL without PING: the connection works (as in the Python package)
        } else {
          throw err;
        }
      }
      this.outage.ok();
    }
    const abort = () => conn.disconnect();
    // Aborted while connecting or pinging: the blocking ACQUIRE is never sent.
    signal?.throwIfAborted();
    signal?.addEventListener("abort", abort, { once: true });
    const follow = arg !== null ? this.followMaster(conn) : null;
    let sent = performance.now();
    let reply: unknown;
    try {
      const limit = arg === null ? this.setupMs : arg === 0 ? null : arg + this.setupMs;
      reply = await timed(conn, conn.call("HBLOCK.ACQUIRE", ...args), limit);
    } finally {
      signal?.removeEventListener("abort", abort);
      follow?.();
    }
    if (reply === null) throw await this.notAcquired(conn, `${this.key}: not granted`);
    const token = Number(reply);
    if (arg !== null && (await this.moved(conn, this.setupMs))) {
      try {
        await timed(conn, conn.call("HBLOCK.RELEASE", this.key, this.owner, token), this.setupMs);
      } catch {
        // it ends by itself
      }
      throw replyError("NOTHELD granted by a master Sentinel no longer names");
    }
    if (arg === null) return [token, sent];
    // A blocking grant happened at an unknown time: count from a beat.
    sent = performance.now();
    await timed(conn, conn.call("HBLOCK.BEAT", this.key, this.owner, token), this.setupMs);
    return [token, sent];
  }

  /** Through Sentinel: while `conn` waits, ask Sentinel every interval (0.1
   * to 1 s) whether the master moved; if so close `conn` (the wait ends at
   * once, even on a hung master) and the wait starts again on the new one. */
  private followMaster(conn: Redis): (() => void) | null {
    if (this.asker === null) return null;
    let done = false;
    const every = Math.min(Math.max(this.intervalMs, 100), 1000);
    const tick = async () => {
      if (done) return;
      if (await this.moved(conn, every).catch(() => false)) {
        if (done) return;
        log.warn(`waiting for ${this.key}: Sentinel names a new master; waiting there`);
        conn.disconnect();
        return;
      }
      if (!done) timer = setTimeout(tick, every);
    };
    let timer = setTimeout(tick, every);
    return () => {
      done = true;
      clearTimeout(timer);
    };
  }

  // -- beating -------------------------------------------------------------

  private async beatAndRebind(conn: Redis): Promise<void> {
    await timed(conn, conn.call("HBLOCK.BEAT", this.key, this.owner, this.token), this.beatTimeoutMs);
    const rebind: (string | number)[] = [this.key, this.owner, "BIND", this.bindMs as number];
    let token: unknown;
    try {
      token = await timed(conn, conn.call("HBLOCK.ACQUIRE", ...rebind, ...limitArgs(this.limit)), this.beatTimeoutMs);
    } catch (err) {
      if (!(err instanceof Error && err.name === "ReplyError" && errorText(err).includes(LIMIT_MISMATCH))) throw err;
      // HBLOCK.LIMIT changed the limit since the grant: re-bind under the
      // lock's (the lease is the same).
      const info = asInfo(await timed(conn, conn.call("HBLOCK.INFO", this.key), this.beatTimeoutMs));
      const limit = Number(info?.limit ?? 1);
      token = await timed(conn, conn.call("HBLOCK.ACQUIRE", ...rebind, ...limitArgs(limit)), this.beatTimeoutMs);
    }
    if (token !== null && Number(token) === this.token) return;
    if (token !== null) await timed(conn, conn.call("HBLOCK.RELEASE", this.key, this.owner, Number(token)), this.beatTimeoutMs);
    throw replyError("NOTHELD the lease ended while re-binding");
  }

  /** Waits up to `waitMs` in HBLOCK.WATCH on the bound connection. true:
   * the holder changed (beat now to find out why); false: the time ran out
   * (or, on limit > 1, another holder came or went); null: the connection
   * failed. */
  private async watchHolder(conn: Redis, waitMs: number): Promise<boolean | null> {
    try {
      const seenArg = this.seenToken ?? this.token;
      const reply = await timed(conn, conn.call("HBLOCK.WATCH", this.key, "SEEN", seenArg, "TIMEOUT", Math.max(1, Math.ceil(waitMs))), waitMs + this.beatTimeoutMs);
      const info = asInfo(reply);
      if (this.limit === 1 && Number(info?.limit ?? 1) === 1) {
        this.seenToken = this.token;
        return holder(info) !== this.token;
      }
      // Limit > 1: WATCH answers at every grant and lease end of any holder
      // (or the TIMEOUT); pass back what it saw, and ask whether this lease
      // is still live (a NOTHELD is found out by the beat).
      const now = seen(info);
      if (now === this.seenToken) return false;
      this.seenToken = now;
      return await this.checkOwn(conn);
    } catch (err) {
      if (err instanceof Error && err.name === "ReplyError" && !this.transient(err)) {
        this.noWatch = true;
        log.debug(`${this.key}: HBLOCK.WATCH refused (${errorText(err)}); sleeping between beats instead`);
        return false;
      }
      return null;
    }
  }

  /** HBLOCK.CHECK of this lease on `conn`: true when NOTHELD (beat now to
   * find out why), false when live (or CHECK is refused), null when the
   * connection failed. */
  private async checkOwn(conn: Redis): Promise<boolean | null> {
    try {
      await timed(conn, conn.call("HBLOCK.CHECK", this.key, this.owner, this.token), this.beatTimeoutMs);
      return false;
    } catch (err) {
      if (isNotHeld(err)) return true;
      if (err instanceof Error && err.name === "ReplyError" && !this.transient(err)) return false;
      return null;
    }
  }

  private async beatLoop(): Promise<void> {
    const backoff = new Backoff(this.intervalMs);
    const period = this.misses > 1 ? this.intervalMs : this.intervalMs / 2;
    const stop = this.stopper.signal;
    let fresh = this.beater === null;
    let nextBeat = performance.now() + period;
    try {
      for (;;) {
        if (stop.aborted) return;
        this.noticeLost();
        if (this.reason !== null) return;
        const wait = Math.min(nextBeat, this.validUntil) - performance.now();
        if (wait > 0) {
          if (this.bindMs === null || fresh || this.failing !== null || this.noWatch || this.beater === null) {
            await sleep(wait, stop);
            if (stop.aborted) return;
            if (performance.now() < nextBeat) continue;
          } else {
            const changed = await this.watchHolder(this.beater, wait);
            if (stop.aborted) return;
            if (changed === null) {
              fresh = true;
              this.beater.disconnect();
            } else if (!changed && performance.now() < nextBeat) {
              continue;
            }
          }
        }
        if (stop.aborted) return;
        if (!fresh && this.beater && (await this.moved(this.beater, this.beatTimeoutMs))) {
          this.beater.disconnect();
          fresh = true;
        }
        const sent = performance.now();
        try {
          if (fresh || this.beater === null) {
            this.beater?.disconnect();
            this.beater = null;
            this.beater = await dedicated(this.client, this.key, this.name, this.beatTimeoutMs);
          }
          if (fresh && this.bindMs !== null) await this.beatAndRebind(this.beater);
          else await timed(this.beater, this.beater.call("HBLOCK.BEAT", this.key, this.owner, this.token), this.beatTimeoutMs);
        } catch (err) {
          if (stop.aborted) return;
          if (isNotHeld(err)) {
            this.markLost(errorText(err), NotHeld);
            return;
          }
          const found = this.fatal(err);
          if (found) {
            log.error(found.message);
            this.markLost(`${found.error}: ${found.hint}`);
            return;
          }
          this.outage.failed(err);
          this.failing = errorText(err);
          fresh = true;
          this.beater?.disconnect();
          this.beater = null;
          nextBeat = performance.now() + backoff.next();
          continue;
        }
        fresh = false;
        if (this.reason !== null) return;
        this.setDeadline(sent + this.leaseMs);
        nextBeat = sent + period;
        backoff.reset();
        this.failing = null;
        this.outage.ok();
      }
    } finally {
      this.outage.end();
      this.beater?.disconnect();
      this.beater = null;
      this.asker?.close();
    }
  }

  // -- fenced writes -------------------------------------------------------

  /** Runs `command` on the caller's client as `HBLOCK.FENCED key owner
   * token ...command`: applied only while this lease is the live one by the
   * server's clock. Resolves to the command's reply as ioredis gives it
   * (`"OK"`, numbers, strings); the command's own errors reject as ioredis
   * rejects them; a refusal (NOTHELD) marks the lease lost and rejects with
   * NotHeld. */
  async fenced(...command: (string | number | Buffer)[]): Promise<unknown> {
    if (this.token === 0) throw new LeaseLost(`${this.key}: not acquired`);
    if (command.length === 0) throw new TypeError("fenced needs a command");
    try {
      return await this.client.call("HBLOCK.FENCED", this.key, this.owner, this.token, ...command);
    } catch (err) {
      if (isNotHeld(err)) {
        this.markLost(errorText(err), NotHeld);
        throw new NotHeld(`${this.key}: ${errorText(err)}`, { cause: err });
      }
      throw err;
    }
  }

  // -- releasing -----------------------------------------------------------

  /** Stops beating and releases; true when this ended the lease. */
  async release(): Promise<boolean> {
    if (this.token === 0 || this.released) return false;
    this.released = true;
    this.noticeLost();
    const wasLost = this.reason !== null;
    this.stopper.abort();
    let released = false;
    let conn: Redis | null = null;
    try {
      conn = await dedicated(this.client, this.key, this.name, Math.max(this.intervalMs, 1000));
      released = (await timed(conn, conn.call("HBLOCK.RELEASE", this.key, this.owner, this.token), Math.max(this.intervalMs, 1000))) === 1;
    } catch (err) {
      log.warn(`${this.key}: ${this.url}: release failed: ${errorText(err)}`);
      return false;
    } finally {
      conn?.disconnect();
      this.beater?.disconnect();
      await this.loop;
      clearTimeout(this.timer);
      if (this.reason === null) {
        this.reason = "released";
        this.controller.abort(new LeaseLost(`${this.key}: released`));
      }
    }
    if (released) log.info(`released ${this.key} token=${this.token}`);
    else if (!wasLost) log.warn(`lost ${this.key}: token=${this.token} was no longer held`);
    return released;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.release();
  }

  toString(): string {
    return `Lease(key=${JSON.stringify(this.key)}, owner=${JSON.stringify(this.owner)}, token=${this.token}, lost=${this.lost})`;
  }
}

/** ACQUIRE's LIMIT, left out for 1 (the server's default). */
function limitArgs(limit: number): (string | number)[] {
  return limit === 1 ? [] : ["LIMIT", limit];
}

/** Acquires the lease on `key` (waiting in the server's queue as `opts`
 * says) and starts beating; rejects with NotAcquired when not granted,
 * FatalError at once on a fatal error. */
export async function acquire(client: Client, key: string, opts: LeaseOptions = {}): Promise<Lease> {
  return new Lease(client, key, opts).acquire(opts.signal);
}
