// Real servers for the tests: redis-server (SERVER_BIN picks another, e.g.
// Valkey) with the module (HBLOCK_MODULE) on a free loopback port, in a temp
// dir of its own; every process is killed at the end.
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { Redis } from "ioredis";
import { asInfo } from "../dist/esm/info.js";

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
export const MODULE = process.env.HBLOCK_MODULE ?? join(ROOT, "target/release/libhblock.so");
export const SERVER_BIN = process.env.SERVER_BIN ?? "redis-server";

export function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.unref();
    s.on("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** A logger for hblock.setLogger that prints nothing. */
export const quiet = { debug() {}, info() {}, warn() {}, error() {} };

/** One field of HBLOCK.INFO's raw reply (null for a missing lock or field). */
export const field = async (client, key, name) => {
  const reply = await client.call("HBLOCK.INFO", key);
  if (reply === null) return null;
  const i = reply.indexOf(name);
  return i < 0 ? null : reply[i + 1];
};

/** HBLOCK.INFO as the package parses it (asInfo). */
export const info = async (client, key) => asInfo(await client.call("HBLOCK.INFO", key));

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** check()'s first truthy value within `within` ms, else null. */
export async function eventually(check, within = 5000) {
  const deadline = performance.now() + within;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (performance.now() > deadline) return null;
    await sleep(5);
  }
}

const running = new Set();
process.on("exit", () => {
  for (const p of running) try { p.kill("SIGKILL"); } catch {}
});

export class Server {
  static async start(extra = [], { module = true, port = null, sentinel = false } = {}) {
    const s = new Server();
    s.dir = mkdtempSync(join(tmpdir(), "hblock-node-"));
    s.port = port ?? (await freePort());
    s.extra = extra;
    s.module = module;
    s.sentinel = sentinel;
    // A port another server took between freePort() and our bind (ours then
    // exits): another free one, unless this port was asked for.
    for (let attempt = 1; ; attempt++) {
      try {
        await s.start();
        return s;
      } catch (err) {
        if (port !== null || attempt >= 5) throw err;
        s.port = await freePort();
      }
    }
  }

  get url() {
    return `redis://127.0.0.1:${this.port}`;
  }

  async start() {
    const args = this.sentinel
      ? [join(this.dir, "sentinel.conf"), "--sentinel", "--port", String(this.port), "--bind", "127.0.0.1", "--dir", this.dir, ...this.extra]
      : ["--port", String(this.port), "--bind", "127.0.0.1", "--dir", this.dir, "--save", "",
         ...(this.module ? ["--loadmodule", MODULE] : []), ...this.extra];
    this.proc = spawn(SERVER_BIN, args, { stdio: "ignore" });
    running.add(this.proc);
    const probe = new Redis(this.port, "127.0.0.1", { lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0 });
    probe.on("error", () => {});
    const proc = this.proc;
    // Up, and ours: INFO's process_id is our child's (not another server's
    // that took the port first; ours then exits, and we stop looking).
    const up = await eventually(async () => {
      if (proc.exitCode !== null || proc.signalCode !== null) return "exited";
      try {
        if (probe.status !== "ready") { probe.disconnect(); await probe.connect(); }
        const info = await probe.info("server");
        return /^process_id:(\d+)/m.exec(info)?.[1] === String(proc.pid);
      } catch { return false; }
    }, 10000);
    probe.disconnect();
    if (up !== true) {
      await this.stop();
      throw new Error(`${SERVER_BIN} did not start on port ${this.port}`);
    }
  }

  client(opts = {}) {
    const c = new Redis(this.port, "127.0.0.1", { maxRetriesPerRequest: 1, ...opts });
    c.on("error", () => {});
    return c;
  }

  signal(sig) {
    if (this.proc && this.proc.exitCode === null) this.proc.kill(sig);
  }

  async stop() {
    if (!this.proc) return;
    const p = this.proc;
    this.proc = null;
    if (p.exitCode === null && p.signalCode === null) {
      const gone = new Promise((r) => p.once("exit", r));
      p.kill("SIGKILL");
      await gone;
    }
    running.delete(p);
  }

  async close() {
    await this.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
