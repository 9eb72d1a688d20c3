// The pure parts, no server: error classes, names, slots, INFO replies, log escaping.
import { test } from "node:test";
import assert from "node:assert/strict";
import { connectionName, instanceOwner, keySlot } from "../dist/esm/connect.js";
import { fatalHint, isNotHeld, isTransient, HINT_LIMIT, HINT_MODULE, HINT_NOAUTH, HINT_URL, HINT_WRONGPASS, HINT_WRONGTYPE } from "../dist/esm/errors.js";
import { asInfo, heldBackMs, holder, notGranted, seen } from "../dist/esm/info.js";
import { Backoff, printable } from "../dist/esm/log.js";
import * as hblock from "hblock";
import { createRequire } from "node:module";

const reply = (text) => Object.assign(new Error(text), { name: "ReplyError" });

test("server errors are fatal, transient or NOTHELD, as in the CLI and Python", () => {
  assert.equal(fatalHint(reply("NOAUTH Authentication required.")), HINT_NOAUTH);
  assert.equal(fatalHint(reply("WRONGPASS invalid username-password pair or user is disabled.")), HINT_WRONGPASS);
  assert.equal(fatalHint(reply("ERR unknown command 'HBLOCK.ACQUIRE', with args beginning with: 'k'")), HINT_MODULE);
  assert.equal(fatalHint(reply("WRONGTYPE Operation against a key holding the wrong kind of value")), HINT_WRONGTYPE);
  assert.equal(fatalHint(reply("MOVED 3999 127.0.0.1:7001")), HINT_URL);
  assert.equal(fatalHint(reply("MOVED 3999 127.0.0.1:7001"), true), null);
  assert.equal(fatalHint(reply("ERR DB index is out of range")), HINT_URL);
  assert.equal(fatalHint(reply("ERR LIMIT 2 does not match the lock's limit 3")), HINT_LIMIT);
  assert.match(HINT_LIMIT, /same limit.*HBLOCK\.LIMIT KEY N/);
  for (const t of ["LOADING Redis is loading", "READONLY You can't write against a read only replica.", "BUSY", "MASTERDOWN x", "TRYAGAIN x", "CLUSTERDOWN x"]) {
    assert.ok(isTransient(reply(t)), t);
  }
  assert.ok(isTransient(new Error("connect ECONNREFUSED 127.0.0.1:1")));
  assert.ok(isTransient(new hblock.TimeoutError("Timeout reading")));
  assert.ok(!isTransient(reply("ERR syntax error")));
  assert.ok(!isTransient(new TypeError("bug")));
  assert.ok(isNotHeld(reply("NOTHELD the lock is held by another owner")));
  assert.ok(!isNotHeld(new Error("NOTHELD but not a reply")));
  assert.ok(new hblock.NotHeld("x") instanceof hblock.LeaseLost);
});

test("connection names and owners", () => {
  assert.equal(connectionName("web 1/ab\u00e9"), "hblock:web_1/ab__");
  const long = connectionName(`${"x".repeat(200)}/4f3a9c0d`);
  assert.equal(long.length, "hblock:".length + 128);
  assert.ok(long.endsWith("../4f3a9c0d"));
  assert.match(instanceOwner("web-1"), /^web-1\/[0-9a-f]{8}$/);
  assert.throws(() => instanceOwner("x".repeat(1016)), RangeError);
  assert.doesNotThrow(() => instanceOwner("x".repeat(1015)));
});

test("cluster slots (CRC16 of the hash tag)", () => {
  assert.equal(keySlot("foo"), 12182);
  assert.equal(keySlot("123456789"), 0x31c3 % 16384);
  assert.equal(keySlot("{user1000}.following"), keySlot("{user1000}.followers"));
  assert.equal(keySlot("foo{}{bar}"), keySlot("foo{}{bar}"));
  assert.equal(keySlot("{}x"), keySlot("{}x"));
});

test("INFO replies", () => {
  const info = asInfo(["state", "held", "owner", "w/1", "token", 7, "ttl", 900, "bound", 1]);
  assert.equal(holder(info), 7);
  assert.equal(notGranted(info), "held by w/1 token=7 ttl=900ms");
  assert.equal(asInfo(null), null);
  assert.equal(notGranted(null), "no such lock yet");
  const back = asInfo(["state", "held-back", "owner", null, "token", 0, "ttl", 2400]);
  assert.equal(heldBackMs(back), 2400);
  assert.equal(holder(back), 0);
  assert.equal(notGranted(back), "grants are held back after a failover for 2400 ms (hblock.failover-delay)");
});

test("INFO's limit and holders; WATCH's SEEN on a lock with permits", () => {
  // An older module ends at `bound`: a plain lock.
  const old = asInfo(["state", "held", "owner", "w/1", "token", 7, "bound", 1]);
  assert.deepEqual([old.limit, old.holders, seen(old)], [1, 1, 7]);
  const free = asInfo(["state", "free", "owner", null, "token", 7, "bound", 0]);
  assert.deepEqual([free.limit, free.holders, seen(free)], [1, 0, 0]);
  const plain = asInfo(["state", "held", "token", 4, "bound", 1, "limit", 1, "holders", 1]);
  assert.equal(seen(plain), 4);
  // Limit > 1: INFO's token (the last issued), whether or not anyone holds.
  const sem = asInfo(["state", "held", "owner", "a/1", "token", 9, "bound", 1, "limit", 3, "holders", 2]);
  assert.deepEqual([sem.limit, sem.holders, seen(sem)], [3, 2, 9]);
  assert.equal(seen(asInfo(["state", "free", "owner", null, "token", 12, "limit", 3, "holders", 0])), 12);
  assert.equal(seen(null), 0);
});

test("log lines escape control characters; backoff doubles up to half the interval", () => {
  assert.equal(printable("a\nb\x1bc\u2028"), "a\\nb\\x1bc\\u2028");
  const b = new Backoff(100);
  assert.deepEqual([b.next(), b.next(), b.next(), b.next()], [10, 20, 40, 50]);
  b.reset();
  assert.equal(b.next(), 10);
});

test("options are checked before anything is sent", () => {
  const fake = { options: {}, duplicate() { throw new Error("no"); } };
  assert.throws(() => new hblock.Lease(fake, "k", { intervalMs: 0 }), RangeError);
  assert.throws(() => new hblock.Lease(fake, "k", { misses: 10_001 }), RangeError);
  assert.throws(() => new hblock.Lease(fake, "k", { bindMs: -1 }), RangeError);
  assert.throws(() => new hblock.Lease(fake, "k", { waitMs: -1 }), RangeError);
  assert.equal(new hblock.Lease(fake, "k", { intervalMs: 100, misses: 2, bindMs: 5000 }).bindMs, 200);
  assert.equal(new hblock.Lease({ options: { host: "h", port: 1, password: "pw", db: 2 } }, "k").url, "redis://:***@h:1/2");
});

test("the CommonJS build and its types", () => {
  const require = createRequire(import.meta.url);
  const cjs = require("hblock");
  assert.equal(typeof cjs.acquire, "function");
  assert.equal(typeof cjs.Lease.prototype[Symbol.asyncDispose], "function");
  assert.ok(require.resolve("hblock").includes("/dist/cjs/"));
});
