// The lease against a real server (SERVER_BIN: Redis 7.0 or a Valkey):
// hand-over, kill -9 of a holder process, the server stopped, CLIENT KILL,
// fenced writes after a loss, errors.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import * as hblock from "hblock";
import { Server, eventually, field, quiet, sleep } from "./server.mjs";

describe("lease", () => {
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

  test("acquire, fenced, release; NotAcquired says why", async () => {
    // 200 ms beats, a 2 s lease: a test process starved for a moment does
    // not lose it; that beats keep it is seen in the beat count.
    const lease = await hblock.acquire(redis, "t:basic", { owner: "web-1", intervalMs: 200, misses: 10 });
    assert.match(lease.owner, /^web-1\/[0-9a-f]{8}$/);
    assert.ok(lease.token >= 1 && !lease.lost && !lease.signal.aborted);
    assert.ok(lease.validUntil > performance.now());
    assert.equal(await lease.fenced("SET", "t:basic:data", "v"), "OK");
    assert.ok(await eventually(async () => (await field(redis, "t:basic", "beats")) >= 3), "it beats");
    assert.equal(lease.lost, false);
    assert.equal(await field(redis, "t:basic", "state"), "held");
    assert.equal(await field(redis, "t:basic", "bound"), 1);
    await assert.rejects(hblock.acquire(redis, "t:basic", { waitMs: 0 }), (err) => {
      assert.ok(err instanceof hblock.NotAcquired);
      assert.equal(err.reason, "held");
      assert.match(err.message, /^t:basic: not granted: held by web-1\//);
      return true;
    });
    assert.equal(await lease.release(), true);
    assert.ok(lease.lost && lease.signal.aborted && lease.signal.reason instanceof hblock.LeaseLost);
    assert.equal(await field(redis, "t:basic", "state"), "free");
  });

  test("hand-over to a waiter, in order", async () => {
    const a = await hblock.acquire(redis, "t:hand", { intervalMs: 200 });
    const b = hblock.acquire(redis, "t:hand", { owner: "b", intervalMs: 200 });
    assert.ok(await eventually(async () => (await field(redis, "t:hand", "waiters")) === 1), "b waits");
    const c = hblock.acquire(redis, "t:hand", { owner: "c", intervalMs: 200, waitMs: 300 });
    await assert.rejects(c, hblock.NotAcquired);
    await a.release();
    const lease = await b;
    assert.ok(lease.token > a.token);
    assert.match(await field(redis, "t:hand", "owner"), /^b\//);
    await lease.release();
  });

  test("an aborted wait rejects with the signal's reason and leaves the queue", async () => {
    const a = await hblock.acquire(redis, "t:abort", { intervalMs: 200 });
    const controller = new AbortController();
    const b = hblock.acquire(redis, "t:abort", { signal: controller.signal });
    assert.ok(await eventually(async () => (await field(redis, "t:abort", "waiters")) === 1));
    controller.abort(new Error("stop waiting"));
    await assert.rejects(b, /stop waiting/);
    assert.ok(await eventually(async () => (await field(redis, "t:abort", "waiters")) === 0));
    await a.release();
  });

  test("kill -9 of a holder process: the standby gets the lock within the BIND grace", async () => {
    const child = spawn(process.execPath, [fileURLToPath(new URL("holder.mjs", import.meta.url)), String(server.port), "t:kill"],
      { stdio: ["ignore", "pipe", "inherit"] });
    try {
      const line = await new Promise((resolve, reject) => {
        createInterface({ input: child.stdout }).once("line", resolve);
        child.once("exit", (code) => reject(new Error(`holder exited ${code}`)));
      });
      const held = Number(line.split(" ")[1]);
      const standby = hblock.acquire(redis, "t:kill", { owner: "standby", intervalMs: 5000 });
      assert.ok(await eventually(async () => (await field(redis, "t:kill", "waiters")) === 1));
      const killed = performance.now();
      child.kill("SIGKILL");
      const lease = await standby;
      const took = performance.now() - killed;
      console.log(`# kill -9 of the holder -> standby granted ${took.toFixed(0)} ms later (bindMs 100, lease 15 s)`);
      assert.ok(lease.token > held);
      // The lease (interval 5 s x 3) had 15 s left: only the BIND grace can have ended it.
      assert.ok(took < 10_000, `took ${took} ms`);
      await lease.release();
    } finally {
      child.kill("SIGKILL");
    }
  });

  test("CLIENT KILL of the beat connection three times keeps the lease", async () => {
    // A grace of 1 s: re-binding takes a connect and two round trips, which a
    // loaded test machine may stretch past the default 100 ms.
    const lease = await hblock.acquire(redis, "t:ckill", { owner: "ck", intervalMs: 1000, bindMs: 1000 });
    const name = hblock.connectionName(lease.owner);
    const beatId = async () => {
      const list = await redis.call("CLIENT", "LIST");
      // The beat connection waits in HBLOCK.WATCH between beats.
      const row = list.split("\n").find((l) => l.includes(` name=${name} `) && l.includes("cmd=hblock.watch"));
      return row ? row.match(/^id=(\d+)/)[1] : null;
    };
    let last = null;
    for (let kills = 0; kills < 3;) {
      const id = await eventually(async () => {
        const now = await beatId();
        return now !== null && now !== last ? now : null;
      });
      assert.ok(id, `the beat connection (again) before kill ${kills + 1}`);
      // 0: it closed between LIST and KILL (replaced already): find the new one.
      kills += await redis.call("CLIENT", "KILL", "ID", id);
      last = id;
    }
    assert.ok(await eventually(async () => {
      const now = await beatId();
      return now !== null && now !== last;
    }), "re-bound from a new connection");
    assert.equal(lease.lost, false);
    assert.equal(await field(redis, "t:ckill", "token"), lease.token);
    assert.equal(await field(redis, "t:ckill", "bound"), 1);
    assert.equal(await field(redis, "t:ckill", "state"), "held");
    assert.equal(await lease.release(), true);
  });

  test("a fenced write after the lease was lost is refused (NotHeld)", async () => {
    const lease = await hblock.acquire(redis, "{f}:lock", { owner: "w", intervalMs: 60_000, bindMs: null });
    assert.equal(await lease.fenced("SET", "{f}:balance", 100), "OK");
    // Another owner takes over: the lease is ended behind its back.
    await redis.call("HBLOCK.RELEASE", "{f}:lock", lease.owner, lease.token);
    const other = await hblock.acquire(redis, "{f}:lock", { owner: "other", intervalMs: 60_000 });
    await assert.rejects(lease.fenced("SET", "{f}:balance", 0), (err) => {
      assert.ok(err instanceof hblock.NotHeld && err instanceof hblock.LeaseLost);
      return true;
    });
    assert.ok(lease.lost && lease.signal.reason instanceof hblock.NotHeld);
    assert.equal(await redis.get("{f}:balance"), "100");
    assert.equal(await lease.release(), false);
    await other.release();
  });

  test("a lost lease holds nothing: its process exits without release()", async () => {
    const script = `
      import * as hblock from "hblock";
      import { Redis } from "ioredis";
      hblock.setLogger({ debug() {}, info() {}, warn() {}, error() {} });
      const redis = new Redis(${server.port}, "127.0.0.1");
      for (const bindMs of [null, 100]) {
        const lease = await hblock.acquire(redis, "t:exit", { intervalMs: 60000, bindMs });
        await redis.call("HBLOCK.RELEASE", "t:exit", lease.owner, lease.token);
        await lease.fenced("SET", "t:exit:data", 1).catch((err) => { if (!(err instanceof hblock.NotHeld)) throw err; });
        if (!lease.lost) throw new Error("not lost");
      }
      redis.disconnect();`;
    const child = spawn(process.execPath, ["--input-type=module", "-e", script], { cwd: fileURLToPath(new URL("..", import.meta.url)), stdio: "inherit" });
    const started = performance.now();
    const code = await new Promise((resolve) => child.once("exit", resolve));
    assert.equal(code, 0);
    // Its lease had 60 s left; a sleeping beat loop or a timer would have kept it.
    assert.ok(performance.now() - started < 30_000);
  });

  test("fatal errors: WRONGTYPE, the module missing", async () => {
    await redis.set("t:str", "x");
    await assert.rejects(hblock.acquire(redis, "t:str"), (err) => {
      assert.ok(err instanceof hblock.FatalError);
      assert.equal(err.hint, "the key holds another type, not an hblock lock");
      assert.equal(err.url, `redis://127.0.0.1:${server.port}/0`);
      assert.ok(err.message.startsWith("t:str: redis://127.0.0.1:") && err.error.startsWith("WRONGTYPE"));
      return true;
    });
    const bare = await Server.start([], { module: false });
    const client = bare.client();
    try {
      await assert.rejects(hblock.acquire(client, "k"), (err) => {
        assert.ok(err instanceof hblock.FatalError);
        assert.equal(err.hint, "is the hblock module loaded? (loadmodule /path/to/libhblock.so)");
        return true;
      });
    } finally {
      client.disconnect();
      await bare.close();
    }
  });

  test("run releases on return and on throw; watch follows the holder", async () => {
    const seen = [];
    const controller = new AbortController();
    const watching = (async () => {
      for await (const info of hblock.watch(redis, "t:run", { signal: controller.signal })) seen.push(info?.state ?? null);
    })();
    assert.ok(await eventually(() => seen.length === 1), "watch's first item");
    assert.equal(await hblock.run(redis, "t:run", async (lease) => {
      assert.equal(await field(redis, "t:run", "state"), "held");
      return lease.token;
    }, { intervalMs: 200 }) >= 1, true);
    assert.equal(await field(redis, "t:run", "state"), "free");
    await assert.rejects(hblock.run(redis, "t:run", async () => { throw new Error("boom"); }, { intervalMs: 200 }), /boom/);
    assert.equal(await field(redis, "t:run", "state"), "free");
    assert.ok(await eventually(() => seen.at(-1) === "free" && seen.includes("held")), `watch saw ${seen}`);
    controller.abort();
    await watching;
    // The lock did not exist, then held, free, held, free (changes may merge).
    assert.equal(seen[0], null);
    assert.ok(seen.includes("held") && seen.includes("free"), `watch saw ${seen}`);
  });
});

describe("the server stopped", () => {
  test("a short hang: failing and recovered logged once each, the lease kept", async () => {
    const lines = [];
    const keep = (level) => (line) => lines.push(`${level} ${line}`);
    hblock.setLogger({ debug() {}, info: keep("info"), warn: keep("warn"), error: keep("error") });
    const server = await Server.start();
    const redis = server.client();
    try {
      const lease = await hblock.acquire(redis, "t:hang", { owner: "h", intervalMs: 300, misses: 10 });
      server.signal("SIGSTOP");
      assert.ok(await eventually(() => lines.some((l) => l.includes(" failing: ")), 5000), lines.join("\n"));
      server.signal("SIGCONT");
      assert.ok(await eventually(() => lines.some((l) => l.includes(" recovered after ")), 5000), lines.join("\n"));
      assert.equal(lease.lost, false);
      await lease.release();
      const url = `redis://127.0.0.1:${server.port}/0`;
      assert.match(lines[0], new RegExp(`^info acquired t:hang token=\\d+ as h/[0-9a-f]{8}$`));
      assert.equal(lines.filter((l) => l.startsWith(`warn t:hang: ${url} failing: `) && l.endsWith("; retrying")).length, 1, lines.join("\n"));
      assert.equal(lines.filter((l) => new RegExp(`^warn t:hang: ${url} recovered after \\d+\\.\\d s$`).test(l)).length, 1, lines.join("\n"));
      assert.match(lines.at(-1), /^info released t:hang token=\d+$/);
    } finally {
      server.signal("SIGCONT");
      redis.disconnect();
      await server.close();
      hblock.setLogger(null);
    }
  });

  test("SIGSTOP: signal aborted by validUntil, with a LeaseLost", async () => {
    hblock.setLogger(quiet);
    const server = await Server.start();
    const redis = server.client();
    try {
      const lease = await hblock.acquire(redis, "t:stop", { intervalMs: 200, misses: 3 });
      await sleep(300);
      const validUntil = lease.validUntil;
      server.signal("SIGSTOP");
      const stopped = performance.now();
      const at = await new Promise((resolve) => lease.signal.addEventListener("abort", () => resolve(performance.now()), { once: true }));
      console.log(`# server stopped -> signal aborted ${(at - stopped).toFixed(0)} ms later (lease 600 ms, validUntil ${(validUntil - stopped).toFixed(0)} ms after the stop)`);
      assert.ok(lease.signal.reason instanceof hblock.LeaseLost);
      assert.match(lease.signal.reason.message, /^t:stop: no beat acknowledged for 0.6 s/);
      assert.ok(at >= validUntil - 1, "not before validUntil");
      assert.ok(lease.lost);
      server.signal("SIGCONT");
      await lease.release();
    } finally {
      server.signal("SIGCONT");
      redis.disconnect();
      await server.close();
      hblock.setLogger(null);
    }
  });
});
