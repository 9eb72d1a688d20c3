// Sentinel failover and a Redis Cluster key, on real servers (SERVER_BIN:
// Redis 7.0 or a Valkey, also run as the Sentinels).
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { Cluster, Redis } from "ioredis";
import * as hblock from "hblock";
import { Server, eventually, field, freePort, quiet } from "./server.mjs";

async function startSentinel(masterPort) {
  const s = new Server();
  s.dir = (await import("node:fs")).mkdtempSync(join((await import("node:os")).tmpdir(), "hblock-node-sentinel-"));
  s.port = await freePort();
  s.extra = [];
  s.sentinel = true;
  writeFileSync(join(s.dir, "sentinel.conf"),
    `sentinel monitor hbm 127.0.0.1 ${masterPort} 2\n` +
    "sentinel down-after-milliseconds hbm 1000\n" +
    "sentinel failover-timeout hbm 3000\n" +
    "sentinel parallel-syncs hbm 1\n");
  await s.start();
  return s;
}

describe("Sentinel", () => {
  const servers = [];
  let master, replica, sentinels;
  before(async () => {
    hblock.setLogger(quiet);
    master = await Server.start(["--repl-diskless-sync-delay", "0"]);
    replica = await Server.start(["--replicaof", "127.0.0.1", String(master.port)]);
    servers.push(master, replica);
    const r = replica.client();
    assert.ok(await eventually(async () => (await r.info("replication")).includes("master_link_status:up"), 10_000));
    r.disconnect();
    sentinels = [];
    for (let i = 0; i < 3; i++) sentinels.push(await startSentinel(master.port));
    servers.push(...sentinels);
    const s = new Redis(sentinels[0].port, "127.0.0.1");
    assert.ok(await eventually(async () => {
      const replicas = await s.call("SENTINEL", "REPLICAS", "hbm");
      const known = await s.call("SENTINEL", "SENTINELS", "hbm");
      return replicas.length === 1 && known.length === 2;
    }, 20_000), "the Sentinels found the replica and each other");
    s.disconnect();
  });
  after(async () => {
    master?.signal("SIGCONT");
    for (const s of servers) await s.close();
    hblock.setLogger(null);
  });

  test("the master hangs: a standby gets the lock on the promoted replica, the holder's signal aborts", async () => {
    const client = new Redis({
      sentinels: sentinels.map((s) => ({ host: "127.0.0.1", port: s.port })),
      name: "hbm", connectTimeout: 1000, commandTimeout: 1000, maxRetriesPerRequest: 1, failoverDetector: true,
    });
    client.on("error", () => {});
    const m = master.client();
    const r = replica.client();
    try {
      const holder = await hblock.acquire(client, "k", { owner: "holder", intervalMs: 200, misses: 3 });
      assert.ok(hblock.Lease && holder.url.startsWith("redis+sentinel://127.0.0.1:"), holder.url);
      const standby = hblock.acquire(client, "k", { owner: "standby", intervalMs: 200, misses: 3 });
      assert.ok(await eventually(async () => (await field(m, "k", "waiters")) === 1), "the standby waits on the master");
      assert.ok(await eventually(async () => (await field(r, "k", "token")) === holder.token), "the replica has the lock");
      master.signal("SIGSTOP");
      const hung = performance.now();
      const s = new Redis(sentinels[0].port, "127.0.0.1");
      const promoted = await eventually(async () => {
        const [, port] = await s.call("SENTINEL", "get-master-addr-by-name", "hbm");
        return Number(port) === replica.port ? performance.now() : null;
      }, 30_000);
      s.disconnect();
      assert.ok(promoted, "Sentinel promoted the replica");
      const lease = await standby;
      const at = performance.now();
      console.log(`# master hung -> promoted ${((promoted - hung) / 1000).toFixed(1)} s later -> standby granted on the new master ${((at - promoted) / 1000).toFixed(1)} s after that (lease 0.6 s)`);
      assert.ok(lease.token > holder.token);
      assert.match(await field(r, "k", "owner"), /^standby\//, "granted on the new master");
      assert.ok(holder.lost && holder.signal.aborted && holder.signal.reason instanceof hblock.LeaseLost);
      // Fenced writes go through the caller's client: its failoverDetector
      // moves it from the hung master to the promoted one.
      assert.ok(await eventually(async () => (await lease.fenced("SET", "k:data", "new").catch(() => null)) === "OK", 10_000));
      assert.equal(await r.get("k:data"), "new");
      await lease.release();
      await holder.release();
    } finally {
      client.disconnect();
      m.disconnect();
      r.disconnect();
    }
  });
});

describe("Cluster", () => {
  const nodes = [];
  before(async () => {
    hblock.setLogger(quiet);
    for (let i = 0; i < 2; i++) {
      nodes.push(await Server.start(["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "2000"]));
    }
    const [a, b] = nodes.map((n) => n.client());
    await a.call("CLUSTER", "ADDSLOTSRANGE", 0, 8191);
    await b.call("CLUSTER", "ADDSLOTSRANGE", 8192, 16383);
    await a.call("CLUSTER", "MEET", "127.0.0.1", nodes[1].port);
    assert.ok(await eventually(async () => {
      const infos = await Promise.all([a, b].map((c) => c.call("CLUSTER", "INFO")));
      return infos.every((i) => i.includes("cluster_state:ok") && i.includes("cluster_known_nodes:2"));
    }, 20_000), "the cluster is up");
    a.disconnect();
    b.disconnect();
  });
  after(async () => {
    for (const n of nodes) await n.close();
    hblock.setLogger(null);
  });

  test("a lock on a cluster key: acquire on the slot's node, hand-over, fenced write, watch", async () => {
    const cluster = new Cluster([{ host: "127.0.0.1", port: nodes[0].port }]);
    cluster.on("error", () => {});
    const direct = nodes.map((n) => n.client());
    try {
      // A key served by the second node: the lease must find it.
      let key = null;
      for (let i = 0; key === null; i++) {
        const slot = await direct[0].call("CLUSTER", "KEYSLOT", `{orders${i}}:leader`);
        if (slot >= 8192) key = `{orders${i}}`;
      }
      const lease = await hblock.acquire(cluster, `${key}:leader`, { owner: "c1", intervalMs: 200 });
      assert.match(lease.url, /^redis\+cluster:\/\/127\.0\.0\.1:\d+$/);
      assert.equal(await field(direct[1], `${key}:leader`, "state"), "held");
      assert.equal(await field(direct[1], `${key}:leader`, "bound"), 1);
      assert.equal(await lease.fenced("SET", `${key}:data`, "1"), "OK");
      assert.equal(await cluster.get(`${key}:data`), "1");
      const seen = [];
      const controller = new AbortController();
      const watching = (async () => {
        for await (const info of hblock.watch(cluster, `${key}:leader`, { seen: lease.token, signal: controller.signal })) seen.push(info);
      })();
      const standby = hblock.acquire(cluster, `${key}:leader`, { owner: "c2", intervalMs: 200 });
      assert.ok(await eventually(async () => (await field(direct[1], `${key}:leader`, "waiters")) === 1));
      await lease.release();
      const next = await standby;
      assert.ok(next.token > lease.token);
      assert.ok(await eventually(() => seen.some((i) => i?.token === next.token && i.state === "held")), JSON.stringify(seen));
      controller.abort();
      await watching;
      await assert.rejects(lease.fenced("SET", `${key}:data`, "stale"), hblock.NotHeld);
      assert.equal(await cluster.get(`${key}:data`), "1");
      await next.release();
    } finally {
      cluster.disconnect();
      for (const d of direct) d.disconnect();
    }
  });
});
