//! Integration tests: each test starts its own redis-server with the freshly
//! built module (see `support`) and talks to it with the `redis` crate.

/// Servers, clusters, RESP and a PRNG: the dev-only crate `hblock-test-support`.
use hblock_test_support as support;

/// ACL key patterns, commands by name, categories where supported.
mod acl;
/// Records arriving by RESTORE, COPY, RENAME, MOVE, SWAPDB, MIGRATE; forged payloads.
mod arrivals;
/// What a BEAT replicates (a beat delta) and its exact replay.
mod beat_propagation;
/// ACQUIRE ... BIND: leases released when their connection closes.
mod bind;
/// Blocking ACQUIRE: FIFO waiters, hand-off, grant at expiry, WAIT, leaving the queue.
mod blocking;
/// A real Redis Cluster: all slots, blocking, notifications, failover.
mod cluster;
/// Replies of ACQUIRE, BEAT, RELEASE and INFO.
mod commands;
/// The module's own dispatch: borrowed arguments around 16, the cached role.
mod dispatch;
/// Error replies, and the bad-input sweep that must change nothing.
mod errors;
/// maxmemory: warning, evicted locks counted, OOM grants.
mod eviction;
/// The mutual-exclusion checker (HBLOCK_CHECK_SECS, default 20).
mod exclusion;
/// Missed beats, expiry and takeover, on short real leases.
mod expiry;
/// The failover delay: per lock, none after a planned promotion, CONFIG SET, INFO.
mod failover;
/// HBLOCK.FENCED and HBLOCK.CHECK.
mod fenced;
/// Lease checks of flushed databases (FLUSHALL, FLUSHDB, DEBUG RELOAD) freed at once.
mod flushed_checks;
/// Records with times no save could load again are refused (RESTORE).
mod forged_times;
/// Hostile input: 100,000 random calls.
mod fuzz;
/// A grant and CLIENT UNBLOCK / CLIENT KILL in the same pass.
mod handoff;
/// The holder history (hblock.history) and HBLOCK.HISTORY.
mod history;
/// Waiters and leases when their key changes: DEL, FLUSH, RENAME, reload, role change.
mod key_events;
/// Module arguments, MODULE LOAD, RESTORE, diskless loading.
mod loading;
/// used_memory after 10,000 blocked WATCHes and ACQUIREs ended each possible way.
mod memory;
/// Redis being operated: pauses, failover, shutdown, replicas.
mod operations;
/// What a LIMIT can and cannot change: missing keys with waiters, errors.
mod permit_limits;
/// Locks with permits (LIMIT n): holders, FIFO grants, HBLOCK.LIMIT, HOLDERS.
mod permits;
/// The mutual-exclusion checker on a LIMIT 3 lock: 16 clients, pauses, kills (HBLOCK_PERMITS_SECS, default 30).
mod permits_exclusion;
/// RDB, AOF, DEBUG RELOAD, COPY, MEMORY USAGE.
mod persistence;
/// A master with a replica.
mod replication;
/// Configs, command metadata, INFO, notifications, MULTI and Lua.
mod server;
/// Tokens never repeat: DEL, FLUSHALL, eviction, RESTORE, restarts, failovers.
mod tokens;
/// The operations torture test: clients under pause, failover, save, reload, restarts.
mod torture;
/// HBLOCK.WAITERS: who waits, in queue order.
mod waiters;
/// HBLOCK.WATCH: changes of holder without polling.
mod watch;
