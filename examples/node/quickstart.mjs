// examples/node/quickstart.mjs: work only while this process holds the lease.
import { setTimeout as sleep } from "node:timers/promises";
import { Redis } from "ioredis";
import * as hblock from "hblock"; // npm install ./node

// Commands fail at once while Redis is unreachable (the lease says when to stop).
const redis = new Redis(process.env.HBLOCK_REDIS_URL ?? "redis://127.0.0.1:6379",
  { maxRetriesPerRequest: 1, enableOfflineQueue: false });
redis.on("error", () => {});
let stopping = false;
process.on("SIGINT", () => { stopping = true; });

// Waits in the server's queue, beats on a connection of its own.
const lease = await hblock.acquire(redis, "jobs:leader", { owner: "worker", intervalMs: 1000, misses: 3 });
console.log(`${lease.owner} leads with fencing token ${lease.token}`);
// lease.signal aborts when the lease is lost (NOTHELD) or may have ended
// (Redis unreachable until validUntil): hand it to the work, and stop.
while (!stopping && !lease.signal.aborted) {
  try {
    // Applied only while this lease is the live one (HBLOCK.FENCED):
    // a paused process that wakes after a takeover gets hblock.NotHeld.
    await lease.fenced("SET", "jobs:leader:last", `${lease.owner} token=${lease.token}`);
    console.log(`working, writes carry token ${lease.token}`);
  } catch (err) {
    if (err instanceof hblock.NotHeld) break; // lease.lost is now true
    // not written (Redis unreachable): the lease says when to stop
  }
  await sleep(100, null, { signal: lease.signal }).catch(() => {});
}
if (lease.signal.aborted) console.log(`stopped: ${lease.signal.reason.message}`);
await lease.release(); // true when this ended the lease
if (stopping) console.log("released");
redis.disconnect();
