// Heartbeat leases on the hblock Redis module, for Node.js on ioredis.
// `acquire` waits in the server's FIFO queue, beats on a connection of its
// own and releases; `run` keeps a function running as the single active
// instance; `watch` follows a lock's holder. See docs/node.md.

import "./dispose.js";

export { acquire, Lease, type LeaseOptions } from "./lease.js";
export { run } from "./run.js";
export { watch, type WatchOptions } from "./watch.js";
export { FatalError, LeaseLost, NotAcquired, NotHeld, TimeoutError, type NotAcquiredReason } from "./errors.js";
export { type Info } from "./info.js";
export { type Client, connectionName } from "./connect.js";
export { type Logger, setLogger } from "./log.js";
