// Permits (limit n) against a real server (SERVER_BIN: Redis 7.0 or a
// Valkey): n holders with distinct tokens and fenced writes, the next one
// waits for a released permit, run keeps at most n at once, a limit that
// does not match is fatal, a holder stays quiet between beats, watch yields
// each grant and end, and a re-bind follows a limit changed by HBLOCK.LIMIT.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import * as hblock from "hblock";
import { Server, eventually, info, quiet, sleep } from "./server.mjs";

/** calls of each hblock command since CONFIG RESETSTAT, from INFO commandstats. */
const calls = async (client) => {
  const out = {};
  for (const m of (await client.info("commandstats")).matchAll(/^cmdstat_hblock\.(\w+):calls=(\d+)/gm)) out[m[1]] = Number(m[2]);
  return out;
};

describe("permits", () => {
  let server;
  let redis;
  before(async () => {
    hblock.setLogger(quiet);
    server = await Server.start();
    redis = server.client();
  });
  after(async () => {
    redis.disconnect();
    await server.close();
    hblock.setLogger(null);
  });

  test("limit 3: three hold with distinct tokens and fenced writes, the 4th gets a released permit", async () => {
    // 200 ms beats, a 2 s lease: a test process starved for a moment keeps
    // its permits; the 2.5 s sleep below still outlasts the lease.
    const opts = { limit: 3, intervalMs: 200, misses: 10, bindMs: 1000 };
    const holders = [];
    for (let i = 0; i < 3; i++) holders.push(await hblock.acquire(redis, "p:sem", { ...opts, owner: `w${i}` }));
    const tokens = holders.map((l) => l.token);
    assert.equal(new Set(tokens).size, 3, String(tokens));
    const now = await info(redis, "p:sem");
    assert.deepEqual([now.limit, now.holders, now.state], [3, 3, "held"]);
    for (const lease of holders) assert.equal(await lease.fenced("SET", `p:sem:by:${lease.token}`, lease.owner), "OK");
    for (const lease of holders) assert.equal(await redis.get(`p:sem:by:${lease.token}`), lease.owner);

    let granted = null;
    const fourth = hblock.acquire(redis, "p:sem", { ...opts, owner: "w3" }).then((lease) => {
      granted = performance.now();
      return lease;
    });
    assert.ok(await eventually(async () => (await info(redis, "p:sem")).waiters === 1), "the fourth waits");
    await sleep(2500); // longer than the lease: beats keep the three permits, the fourth keeps waiting
    assert.equal(granted, null);
    assert.ok(holders.every((l) => !l.lost));
    const released = performance.now();
    assert.equal(await holders[1].release(), true);
    const lease = await fourth;
    assert.ok(!tokens.includes(lease.token) && lease.token > Math.max(...tokens), `${lease.token} vs ${tokens}`);
    assert.ok(granted - released < 2000, `granted ${granted - released} ms after the release`);
    assert.equal((await info(redis, "p:sem")).holders, 3);
    // The released holder's fenced write is refused; the others' go through.
    await assert.rejects(holders[1].fenced("SET", "p:sem:late", "x"), hblock.NotHeld);
    assert.equal(await redis.exists("p:sem:late"), 0);
    for (const l of [holders[0], holders[2], lease]) {
      assert.equal(await l.fenced("INCR", "p:sem:count"), await redis.get("p:sem:count").then(Number));
      assert.equal(l.lost, false);
      assert.equal(await l.release(), true);
    }
    assert.equal((await info(redis, "p:sem")).holders, 0);
  });

  test("a limit that does not match the lock's is a FatalError with a hint; bad limits are RangeErrors", async () => {
    const a = await hblock.acquire(redis, "p:mis", { owner: "a", limit: 3, intervalMs: 500 });
    for (const [limit, waitMs] of [[2, 0], [undefined, undefined]]) {
      await assert.rejects(hblock.acquire(redis, "p:mis", { owner: "b", limit, waitMs }), (err) => {
        assert.ok(err instanceof hblock.FatalError, String(err));
        assert.match(err.error, /does not match the lock's limit 3/);
        assert.match(err.hint, /HBLOCK\.LIMIT/);
        return true;
      });
    }
    const now = await info(redis, "p:mis");
    assert.deepEqual([now.holders, now.waiters], [1, 0]);
    assert.equal(a.lost, false);
    assert.equal(await a.release(), true);
    const fake = { options: {}, duplicate() { throw new Error("no"); } };
    for (const bad of [0, 1001, 1.5, 1_000_000]) assert.throws(() => new hblock.Lease(fake, "k", { limit: bad }), RangeError);
    assert.equal(new hblock.Lease(fake, "k", { limit: 1000 }).limit, 1000);
  });

  test("run with limit 2 runs at most 2 at once, each with its own token", async () => {
    let running = 0;
    let most = 0;
    const work = async (lease) => {
      running += 1;
      most = Math.max(most, running);
      await sleep(300);
      running -= 1;
      return lease.token;
    };
    const tokens = await Promise.all(Array.from({ length: 5 }, (_, i) =>
      hblock.run(redis, "p:run", work, { owner: `r${i}`, limit: 2, intervalMs: 200, bindMs: 1000 })));
    assert.equal(new Set(tokens).size, 5, String(tokens));
    assert.equal(most, 2);
    assert.equal((await info(redis, "p:run")).holders, 0);
  });

  test("a limit 3 holder idle for 3 s issues a bounded number of commands (no busy loop)", async (t) => {
    const lease = await hblock.acquire(redis, "p:idle", { owner: "idle", limit: 3, intervalMs: 500 });
    await redis.call("CONFIG", "RESETSTAT");
    // Other holders come and go: each grant and end wakes the idle one's WATCH.
    for (let i = 0; i < 3; i++) {
      const other = await hblock.acquire(redis, "p:idle", { owner: "other", limit: 3, intervalMs: 500 });
      await sleep(100);
      await other.release();
      await sleep(200);
    }
    await sleep(2000);
    const n = await calls(redis);
    const watchAndCheck = (n.watch ?? 0) + (n.check ?? 0);
    t.diagnostic(`commands in 3 s: ${JSON.stringify(n)}`);
    // About 6 beats and 6 changes here; a busy loop makes thousands.
    assert.ok(watchAndCheck < 60, JSON.stringify(n));
    assert.ok((n.beat ?? 0) < 30, JSON.stringify(n));
    assert.ok((n.beat ?? 0) >= 2, `it still beats: ${JSON.stringify(n)}`);
    assert.equal(lease.lost, false);
    assert.equal(await lease.release(), true);
  });

  test("a limit 3 holder released by someone else notices at the WATCH answer, not at its next beat", async () => {
    const other = await hblock.acquire(redis, "p:ended", { owner: "other", limit: 3, intervalMs: 5000 });
    const lease = await hblock.acquire(redis, "p:ended", { owner: "me", limit: 3, intervalMs: 5000 });
    await sleep(200); // it waits in WATCH now
    const ended = performance.now();
    assert.equal(await redis.call("HBLOCK.RELEASE", "p:ended", lease.owner, lease.token), 1);
    // The next beat is ~5 s away: only WATCH + CHECK can find it this soon.
    assert.ok(await eventually(() => lease.lost, 2500), "lost soon after the release");
    assert.ok(lease.signal.reason instanceof hblock.NotHeld, String(lease.signal.reason));
    assert.ok(performance.now() - ended < 2500);
    assert.equal(other.lost, false);
    await lease.release();
    assert.equal(await other.release(), true);
  });

  test("watch yields each grant and end of a limit 2 lock", async () => {
    const first = await hblock.acquire(redis, "p:watch", { owner: "a", limit: 2, intervalMs: 500 });
    const changes = hblock.watch(redis, "p:watch");
    const next = async () => (await changes.next()).value;
    const now = await next();
    assert.deepEqual([now.limit, now.holders], [2, 1]);
    const second = await hblock.acquire(redis, "p:watch", { owner: "b", limit: 2, intervalMs: 500 });
    assert.equal((await next()).holders, 2);
    await second.release();
    assert.equal((await next()).holders, 1);
    await first.release();
    const last = await next();
    assert.deepEqual([last.holders, last.state], [0, "free"]);
    await changes.return();
  });

  test("a dropped beat connection re-binds with the lock's limit, also after HBLOCK.LIMIT changed it", async () => {
    const lease = await hblock.acquire(redis, "p:rebind", { owner: "rb", limit: 3, intervalMs: 1000, bindMs: 1000 });
    const name = hblock.connectionName(lease.owner);
    const beatId = async () => {
      const row = (await redis.call("CLIENT", "LIST")).split("\n").find((l) => l.includes(` name=${name} `) && l.includes("cmd=hblock.watch"));
      return row ? row.match(/^id=(\d+)/)[1] : null;
    };
    let last = null;
    for (const limit of [3, 4]) {
      if (limit !== 3) assert.equal(await redis.call("HBLOCK.LIMIT", "p:rebind", limit), limit);
      const id = await eventually(async () => {
        const now = await beatId();
        return now !== null && now !== last ? now : null;
      });
      assert.ok(id, `the beat connection (limit ${limit})`);
      await redis.call("CLIENT", "KILL", "ID", id);
      last = id;
      assert.ok(await eventually(async () => {
        const now = await beatId();
        return now !== null && now !== last;
      }), `re-bound from a new connection (limit ${limit})`);
      const now = await info(redis, "p:rebind");
      assert.deepEqual([now.limit, now.holders, now.bound], [limit, 1, 1]);
      assert.equal(lease.lost, false);
    }
    assert.equal(await lease.fenced("SET", "p:rebind:data", "v"), "OK");
    assert.equal(await lease.release(), true);
  });
});
