// The package's errors, and which server errors are fatal: the same rules
// and words as the CLI and the Python package (python/src/hblock/_errors.py).
//
// - fatal (FatalError): retrying cannot help (authentication, the module
//   missing, an ACL refusal, a key of another type, a `limit` that does not
//   match the lock's, a bad URL); thrown at
//   once, naming the masked URL and what to do.
// - transient: connection refused/reset/closed, timeouts, LOADING, TRYAGAIN,
//   MASTERDOWN, CLUSTERDOWN, READONLY (after a failover), BUSY; retried.

import type { Info } from "./info.js";

export const HINT_NOAUTH =
  "the server needs a password: put it in the URL (redis://:PASSWORD@host:port) or in HBLOCK_REDIS_URL";
export const HINT_WRONGPASS = "wrong user name or password in the URL";
export const HINT_MODULE = "is the hblock module loaded? (loadmodule /path/to/libhblock.so)";
export const HINT_NOPERM =
  "the ACL user may not run this command or use this key: grant it the hblock commands and the key";
export const HINT_WRONGTYPE = "the key holds another type, not an hblock lock";
export const HINT_URL = "check the URL";
export const HINT_LIMIT =
  "every holder and waiter of a lock gives the same limit: use the lock's (hblock info KEY shows it), " +
  "or change it with HBLOCK.LIMIT KEY N";

/** Why a lock was not granted, read from its HBLOCK.INFO right after. */
export type NotAcquiredReason = "held" | "held-back" | "free" | "missing" | null;

/** The lock was not granted (held by another owner, the wait ran out, or
 * grants are held back after a failover). */
export class NotAcquired extends Error {
  override name = "NotAcquired";
  constructor(
    message: string,
    readonly reason: NotAcquiredReason = null,
    readonly heldBackMs: number | null = null,
    readonly info: Info | null = null,
  ) {
    super(message);
  }
}

/** The lease is gone (NOTHELD), or may have ended (no beat acknowledged in time). */
export class LeaseLost extends Error {
  override name = "LeaseLost";
}

/** The server answered NOTHELD: this lease is not the live one (a fenced
 * write refused, or a beat). The lease is marked lost. */
export class NotHeld extends LeaseLost {
  override name = "NotHeld";
}

/** An error retrying cannot cure; the message is `KEY: MASKED_URL: ERROR: HINT`.
 * The ioredis error is `cause`. */
export class FatalError extends Error {
  override name = "FatalError";
  constructor(
    readonly key: string,
    readonly url: string,
    readonly error: string,
    readonly hint: string,
    options?: { cause?: unknown },
  ) {
    super(`${key}: ${url}: ${error}: ${hint}`, options);
  }
}

/** A command that got no answer within its time (the connection is closed). */
export class TimeoutError extends Error {
  override name = "TimeoutError";
}

/** The error's text as the server (or the socket) gave it. */
export function errorText(err: unknown): string {
  if (err instanceof Error) return err.message.trim();
  return String(err);
}

function isReplyError(err: unknown): boolean {
  return err instanceof Error && err.name === "ReplyError";
}

function code(err: unknown): string {
  return errorText(err).split(" ", 1)[0] ?? "";
}

/** The hint when `err` is fatal, else null (transient or not ours to judge). */
export function fatalHint(err: unknown, cluster = false): string | null {
  const text = errorText(err);
  const lower = text.toLowerCase();
  const c = code(err);
  if (c === "NOAUTH" || lower.includes("authentication required") || lower.includes("protocol error: unauthenticated")) {
    return HINT_NOAUTH;
  }
  if (c === "WRONGPASS" || lower.includes("invalid username-password pair")) return HINT_WRONGPASS;
  if (lower.includes("auth") && (lower.includes("without any password configured") || lower.includes("no password is set"))) {
    return HINT_WRONGPASS;
  }
  if (c === "NOPERM") return HINT_NOPERM;
  if (isReplyError(err)) {
    if (lower.includes("unknown command") && lower.includes("'hblock.")) return HINT_MODULE;
    if (c === "WRONGTYPE") return HINT_WRONGTYPE;
    if (lower.includes("does not match the lock's limit")) return HINT_LIMIT;
    if ((!cluster && (c === "MOVED" || c === "ASK")) || c === "CROSSSLOT") return HINT_URL;
    if (lower.includes("db index is out of range") || lower.includes("invalid db index")) return HINT_URL;
  }
  if (lower.includes("failed to connect to sentinel") === false && lower.includes("sentinel") && lower.includes("unknown master")) {
    return HINT_URL;
  }
  return null;
}

export function isNotHeld(err: unknown): boolean {
  return isReplyError(err) && errorText(err).startsWith("NOTHELD");
}

/** Connection-level errors and the codes a server answers while it cannot
 * serve for a while; never a fatal one. */
export function isTransient(err: unknown, cluster = false): boolean {
  if (fatalHint(err, cluster) !== null) return false;
  if (isReplyError(err)) {
    const c = code(err);
    if (cluster && (c === "MOVED" || c === "ASK")) return true;
    return ["LOADING", "TRYAGAIN", "MASTERDOWN", "CLUSTERDOWN", "READONLY", "BUSY", "UNBLOCKED"].includes(c);
  }
  // Everything else ioredis throws is about the connection: refused, reset,
  // closed, "Connection is closed.", "All sentinels are unreachable", our timeouts.
  // A TypeError or RangeError is a bug or a bad argument, not an outage.
  return err instanceof Error && !(err instanceof TypeError) && !(err instanceof RangeError);
}
