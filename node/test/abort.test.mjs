// An abort while acquire or watch is still connecting ends them at once (the
// blocking command is never sent and no waiter stays queued); an ACL user
// without PING can still wait; an async onLost that rejects is logged, not
// left unhandled. From a hostile review of the package.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import * as hblock from "hblock";
import { Server, eventually, info } from "./server.mjs";

describe("aborts and ACLs", () => {
  let server;
  let redis;
  const logged = [];
  before(async () => {
    hblock.setLogger({ debug() {}, info() {}, warn() {}, error: (m) => logged.push(m) });
    server = await Server.start();
    redis = server.client();
  });
  after(async () => {
    redis.disconnect();
    await server.close();
    hblock.setLogger(null);
  });

  for (const delay of [0, 1, 2]) {
    test(`acquire aborted ${delay} ms in rejects at once and leaves no waiter`, async () => {
      const key = `ab:acquire:${delay}`;
      await redis.call("HBLOCK.ACQUIRE", key, "other", "INTERVAL", 600000);
      const ac = new AbortController();
      setTimeout(() => ac.abort(new Error("aborted by the test")), delay);
      const started = performance.now();
      await assert.rejects(hblock.acquire(redis, key, { signal: ac.signal }), /aborted by the test/);
      assert.ok(performance.now() - started < 2000, "rejected without waiting for the lock");
      assert.ok(await eventually(async () => (await info(redis, key)).waiters === 0, 2000));
    });

    test(`watch aborted ${delay} ms in ends at once`, async () => {
      const key = `ab:watch:${delay}`;
      const token = Number(await redis.call("HBLOCK.ACQUIRE", key, "other", "INTERVAL", 600000));
      const ac = new AbortController();
      setTimeout(() => ac.abort(), delay);
      const started = performance.now();
      for await (const _ of hblock.watch(redis, key, { seen: token, signal: ac.signal })) {
        // nothing changes: only the abort ends the loop
      }
      assert.ok(performance.now() - started < 2000, "ended without a change of holder");
    });
  }

  test("an ACL user without PING waits and is granted", async () => {
    await redis.call("ACL", "SETUSER", "noping", "on", ">pw", "~*", "+@all", "-ping");
    const user = server.client({ username: "noping", password: "pw" });
    try {
      await redis.call("HBLOCK.ACQUIRE", "ab:acl", "other", "INTERVAL", 600000);
      const waiting = hblock.acquire(user, "ab:acl", { owner: "noping", waitMs: 5000 });
      assert.ok(await eventually(async () => (await info(redis, "ab:acl")).waiters === 1, 3000));
      await redis.call("HBLOCK.RELEASE", "ab:acl", "other", (await info(redis, "ab:acl")).token);
      const lease = await waiting;
      assert.ok(lease.token > 0 && lease.owner.startsWith("noping"));
      await lease.release();
    } finally {
      user.disconnect();
    }
  });

  test("an async onLost that rejects is logged", async () => {
    const lease = await hblock.acquire(redis, "ab:onlost", {
      intervalMs: 200,
      onLost: async () => {
        throw new Error("onLost failed on purpose");
      },
    });
    await redis.del("ab:onlost");
    assert.ok(await eventually(async () => logged.some((m) => m.includes("onLost failed on purpose")), 3000));
    assert.ok(lease.lost);
  });
});
