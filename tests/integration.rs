//! Integration tests: each test starts its own redis-server with the freshly
//! built module (see `support`) and talks to it with the `redis` crate.

/// Servers, clusters, RESP and a PRNG: the dev-only crate `hblock-test-support`.
use hblock_test_support as support;

/// Blocking ACQUIRE: FIFO waiters, hand-off, grant at expiry, WAIT, leaving the queue.
mod blocking;
/// A real Redis Cluster: all slots, blocking, notifications, failover.
mod cluster;
/// Replies of ACQUIRE, BEAT, RELEASE and INFO.
mod commands;
/// Error replies, and the bad-input sweep that must change nothing.
mod errors;
/// The mutual-exclusion checker (HBLOCK_CHECK_SECS, default 20).
mod exclusion;
/// Missed beats, expiry and takeover, on short real leases.
mod expiry;
/// Hostile input: 100,000 random calls.
mod fuzz;
/// Redis being operated: pause, failover, shutdown, eviction, module args.
mod operations;
/// RDB, AOF, DEBUG RELOAD, COPY, MEMORY USAGE.
mod persistence;
/// A master with a replica.
mod replication;
/// Configs, command metadata, INFO, notifications, MULTI and Lua.
mod server;
/// The operations torture test: clients under pause, failover, save, reload, restarts.
mod torture;
