// A holder in a process of its own (the kill -9 test): acquires KEY on the
// server at PORT, prints "token N", then holds it until killed.
import * as hblock from "hblock";
import { Redis } from "ioredis";

const [port, key] = process.argv.slice(2);
const redis = new Redis(Number(port), "127.0.0.1");
const lease = await hblock.acquire(redis, key, { owner: "child", intervalMs: 5000, misses: 3, bindMs: 100 });
console.log(`token ${lease.token}`);
setInterval(() => {}, 1 << 30);
