// Connections of a lease's own, made like the caller's client (address,
// credentials, TLS, Sentinel, database) but with their own names and
// timeouts and no hidden retries: a retried ACQUIRE or BEAT would hide what
// happened. On a Cluster client, a plain connection to the master node that
// serves the key's slot.

import { randomBytes } from "node:crypto";
import { hostname } from "node:os";
import { Redis } from "ioredis";
import type { Cluster, RedisOptions } from "ioredis";
import { TimeoutError } from "./errors.js";

/** The client a lease or a watch is given: an ioredis Redis (standalone or
 * Sentinel) or Cluster. */
export type Client = Redis | Cluster;

const NAME_MAX = 128;
const NAME_TAIL = 9;
/** The longest owner the module accepts (bytes), the suffix included. */
export const OWNER_MAX = 1024;

export function isCluster(client: Client): client is Cluster {
  return (client as { isCluster?: boolean }).isCluster === true;
}

function options(client: Client): RedisOptions {
  if (isCluster(client)) return (client.options.redisOptions ?? {}) as RedisOptions;
  return client.options;
}

export function isSentinel(client: Client): boolean {
  if (isCluster(client)) return false;
  const o = client.options;
  return Array.isArray(o.sentinels) && o.sentinels.length > 0 && !!o.name;
}

/** `hblock:<owner>` with every byte Redis refuses in a name (outside
 * '!'..'~') replaced by `_`; an owner part over 128 bytes is cut in the
 * middle, keeping its last 9 bytes (the unique suffix). */
export function connectionName(owner: string): string {
  let raw = Buffer.from(owner, "utf8");
  if (raw.length > NAME_MAX) {
    raw = Buffer.concat([raw.subarray(0, NAME_MAX - NAME_TAIL - 2), Buffer.from(".."), raw.subarray(raw.length - NAME_TAIL)]);
  }
  let out = "hblock:";
  for (const b of raw) out += b >= 0x21 && b <= 0x7e ? String.fromCharCode(b) : "_";
  return out;
}

/** host:pid:random, unique per process. */
export function defaultOwner(): string {
  return `${hostname()}:${process.pid}:${randomBytes(8).toString("hex")}`;
}

/** A given owner made unique to this lease: `web-1` -> `web-1/4f3a9c0d`. */
export function instanceOwner(given: string): string {
  const owner = `${given}/${randomBytes(4).toString("hex")}`;
  if (Buffer.byteLength(owner, "utf8") > OWNER_MAX) {
    throw new RangeError(`owner must be at most ${OWNER_MAX - 9} bytes (${OWNER_MAX} with the /xxxxxxxx suffix the lease adds)`);
  }
  return owner;
}

/** The client's address as a URL with the password replaced by `***`. */
export function maskedUrl(client: Client): string {
  const o = options(client);
  const auth = o.password ? `${o.username ?? ""}:***@` : o.username ? `${o.username}@` : "";
  const db = Number(o.db ?? 0);
  const scheme = o.tls ? "rediss" : "redis";
  if (isCluster(client)) {
    const nodes = (client as unknown as { startupNodes?: Array<{ host?: string; port?: number } | string | number> }).startupNodes ?? [];
    const hosts = nodes.map((n) => (typeof n === "object" ? `${n.host ?? "127.0.0.1"}:${n.port ?? 6379}` : String(n)));
    return `${scheme}+cluster://${auth}${hosts.join(",")}`;
  }
  if (isSentinel(client)) {
    const hosts = (o.sentinels ?? []).map((s) => `${s.host ?? "localhost"}:${s.port ?? 26379}`);
    return `${scheme}+sentinel://${auth}${hosts.join(",")}/${o.name}${db ? `/${db}` : ""}`;
  }
  if (o.path) return `unix://${auth}${o.path}?db=${db}`;
  return `${scheme}://${auth}${o.host ?? "localhost"}:${o.port ?? 6379}/${db}`;
}

// CRC16 (XMODEM) of the key's hash tag: the Redis Cluster slot.
const TABLE = (() => {
  const t = new Uint16Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i << 8;
    for (let j = 0; j < 8; j++) c = c & 0x8000 ? ((c << 1) ^ 0x1021) & 0xffff : (c << 1) & 0xffff;
    t[i] = c;
  }
  return t;
})();

export function keySlot(key: string): number {
  let raw = Buffer.from(key, "utf8");
  const open = raw.indexOf("{");
  if (open >= 0) {
    const close = raw.indexOf("}", open + 1);
    if (close > open + 1) raw = raw.subarray(open + 1, close);
  }
  let crc = 0;
  for (const b of raw) crc = ((crc << 8) & 0xffff) ^ (TABLE[((crc >> 8) ^ b) & 0xff] ?? 0);
  return crc % 16384;
}

/** What every connection of the package's own overrides. The ready check
 * (INFO) only through Sentinel, where it checks the node's role: elsewhere
 * it costs a round trip when a bound lease re-binds within its grace. */
function own(name: string | null, connectMs: number, readyCheck = false): RedisOptions {
  return {
    ...(name === null ? {} : { connectionName: name }),
    lazyConnect: true,
    connectTimeout: connectMs,
    commandTimeout: undefined,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
    sentinelRetryStrategy: () => null,
    failoverDetector: false,
    reconnectOnError: () => false,
    autoResendUnfulfilledCommands: false,
    autoResubscribe: false,
    enableAutoPipelining: false,
    enableOfflineQueue: true,
    enableReadyCheck: readyCheck,
  };
}

/** A new connection of our own, like `client`, connected (within
 * `connectMs`) and named `name` (CLIENT SETNAME; refused: ignored). */
export async function dedicated(client: Client, key: string, name: string | null, connectMs: number): Promise<Redis> {
  let conn: Redis;
  if (isCluster(client)) {
    if (client.status !== "ready") await timed(null, client.call("PING"), connectMs);
    // A new connection of ours follows the slot map as it is now (after a
    // MOVED, a failover or a resharding); the last known one if the refresh fails.
    await timed(null, new Promise<void>((resolve) => client.refreshSlotsCache(() => resolve())), connectMs).catch(() => {});
    const node = client.slots[keySlot(key)]?.[0];
    if (node === undefined) throw new Error(`CLUSTERDOWN no node serves the slot of ${key}`);
    const at = node.lastIndexOf(":");
    conn = new Redis({ ...options(client), host: node.slice(0, at), port: Number(node.slice(at + 1)), ...own(name, connectMs) });
  } else {
    conn = client.duplicate(own(name, connectMs, isSentinel(client))) as Redis;
  }
  // Every error also rejects the command that met it; a failed connect
  // rejects with "Connection is closed.": say why instead.
  let why: unknown = null;
  conn.on("error", (err) => {
    why = err;
  });
  try {
    await timed(conn, conn.connect(), connectMs);
  } catch (err) {
    conn.disconnect();
    throw why ?? err;
  }
  return conn;
}

/** `p`, or a TimeoutError after `ms` (null: no limit), which closes `conn`
 * (a read blocked on it ends; the server drops the client and its place in
 * any queue). */
export async function timed<T>(conn: Redis | null, p: Promise<T>, ms: number | null): Promise<T> {
  p.catch(() => {});
  if (ms === null) return p;
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      conn?.disconnect();
      reject(new TimeoutError(`Timeout reading from ${conn ? where(conn) : "the server"} after ${ms} ms`));
    }, ms);
  });
  try {
    return await Promise.race([p, late]);
  } finally {
    clearTimeout(timer);
  }
}

function where(conn: Redis): string {
  const stream = (conn as unknown as { stream?: { remoteAddress?: string; remotePort?: number } }).stream;
  if (stream?.remoteAddress) return `${stream.remoteAddress}:${stream.remotePort}`;
  return `${conn.options.host ?? "localhost"}:${conn.options.port ?? 6379}`;
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    }
    signal?.addEventListener("abort", done, { once: true });
  });
}

/** For a Sentinel client: asks its Sentinels which master they name, on
 * one connection to the first that answers, kept until close(). */
export class MasterAsker {
  private conn: Redis | null = null;
  constructor(private readonly client: Client) {}

  /** The master Sentinel names now ("host:port"), or null when no Sentinel
   * answers (an outage of Sentinel is not a failover). */
  async named(timeoutMs: number): Promise<string | null> {
    if (isCluster(this.client)) return null;
    const o = this.client.options;
    const ask = async (conn: Redis): Promise<string | null> => {
      const reply = (await timed(conn, conn.call("SENTINEL", "get-master-addr-by-name", o.name as string), timeoutMs)) as string[] | null;
      return reply && reply.length === 2 ? `${reply[0]}:${reply[1]}` : null;
    };
    if (this.conn !== null) {
      try {
        return await ask(this.conn);
      } catch {
        this.conn.disconnect();
        this.conn = null;
      }
    }
    for (const s of o.sentinels ?? []) {
      const conn = new Redis({
        host: s.host ?? "localhost", port: s.port ?? 26379,
        ...(o.sentinelPassword ? { password: o.sentinelPassword } : {}),
        ...(o.sentinelUsername ? { username: o.sentinelUsername } : {}),
        ...own(null, timeoutMs),
      });
      conn.on("error", () => {});
      try {
        await timed(conn, conn.connect(), timeoutMs);
        const named = await ask(conn);
        if (this.conn === null) this.conn = conn;
        else conn.disconnect();
        return named;
      } catch {
        conn.disconnect(); // ask the next one
      }
    }
    return null;
  }

  /** True when `conn` is connected to a node Sentinel no longer names as
   * the master (after a planned failover the old master stays up, answering,
   * for a while). */
  async moved(conn: Redis, timeoutMs: number): Promise<boolean> {
    const at = connectedTo(conn);
    if (at === null) return false;
    const named = await this.named(timeoutMs);
    return named !== null && named !== at;
  }

  close(): void {
    this.conn?.disconnect();
    this.conn = null;
  }
}

/** The "host:port" `conn` is connected to (null when it is not). */
export function connectedTo(conn: Redis): string | null {
  const stream = (conn as unknown as { stream?: { remoteAddress?: string; remotePort?: number } }).stream;
  if (!stream?.remoteAddress || conn.status !== "ready") return null;
  const host = stream.remoteAddress.replace(/^::ffff:/, "");
  return `${host}:${stream.remotePort}`;
}
