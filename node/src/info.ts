// HBLOCK.INFO replies (RESP2 flat arrays) as plain objects.

/** A lock's HBLOCK.INFO: its field names, integers as numbers, `owner` as a
 * string (null when free). Fields a newer module adds appear as well. */
export interface Info {
  state: "held" | "expired" | "free" | "held-back" | string;
  owner: string | null;
  token: number;
  interval: number;
  misses: number;
  missed: number;
  ttl: number;
  beats: number;
  age: number;
  takeovers: number;
  waiters: number;
  bound: number;
  /** How many owners may hold the lock at once (1 when an older module leaves it out). */
  limit: number;
  /** How many hold a live lease now (0 or 1 on a plain lock). */
  holders: number;
  [field: string]: unknown;
}

/** INFO's state while grants are held back after a promotion (hblock.failover-delay). */
export const HELD_BACK = "held-back";

function decode(value: unknown): unknown {
  if (Buffer.isBuffer(value)) return value.toString("utf8");
  return value;
}

/** The INFO reply as an object (null: no such lock). */
export function asInfo(reply: unknown): Info | null {
  if (reply === null || reply === undefined) return null;
  const out: Record<string, unknown> = {};
  if (Array.isArray(reply)) {
    for (let i = 0; i + 1 < reply.length; i += 2) out[String(decode(reply[i]))] = decode(reply[i + 1]);
  } else if (typeof reply === "object") {
    for (const [name, value] of Object.entries(reply as Record<string, unknown>)) out[name] = decode(value);
  }
  // An older module (before permits) ends at `bound`: a plain lock.
  if (out.limit === undefined) out.limit = 1;
  if (out.holders === undefined) out.holders = out.state === "held" ? 1 : 0;
  return out as Info;
}

/** The token of the live lease, or 0 when the lock is not held. */
export function holder(info: Info | null): number {
  return info && info.state === "held" ? Number(info.token) : 0;
}

/** What to pass back as HBLOCK.WATCH's SEEN so no change is missed: the
 * holder's token on a plain lock (0: none); on a lock of limit > 1 INFO's
 * `token`, the last one issued, which every grant and every lease end
 * advance. */
export function seen(info: Info | null): number {
  if (info && Number(info.limit ?? 1) > 1) return Number(info.token);
  return holder(info);
}

/** Ms left while grants are held back after a failover, else null. */
export function heldBackMs(info: Info | null): number | null {
  if (info && info.state === HELD_BACK) return Math.max(0, Number(info.ttl ?? 0));
  return null;
}

/** Why a lock is not granted, in words (as `hblock run` logs it). */
export function notGranted(info: Info | null): string {
  if (info === null) return "no such lock yet";
  const left = heldBackMs(info);
  if (left !== null) return `grants are held back after a failover for ${left} ms (hblock.failover-delay)`;
  if (info.state === "held") return `held by ${info.owner} token=${info.token} ttl=${info.ttl}ms`;
  return `${info.state} (token ${info.token})`;
}
