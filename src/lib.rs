//! hblock: heartbeat-lease locks inside Redis.
//!
//! # Layout
//! - `core/` (crate `hblock-core`, no Redis dependency, so the compiler keeps
//!   it pure): `lease` (the state machine, `now` passed in), `owner`, `queue`
//!   (FIFO waiters), `schedule` (deadlines), `args` (parsing, errors as data).
//!   Imported here under those names (`hblock_core::lease`, ...).
//! - `lib.rs`: the registration table and module init; nothing else.
//! - `error.rs`: every error reply, as data (core errors converted here).
//! - `commands/`: one file per command (parse -> core -> commit -> reply);
//!   `commit` replicates, publishes, counts and schedules the deadline.
//! - `blocking/`: blocked clients (`waiters.rs`), the one module timer
//!   (`timer.rs`, which writes nothing while Redis pauses writes), keyspace
//!   and server events (`events.rs`).
//! - `binding.rs`: BIND, leases released when their connection closes.
//! - `handoff.rs`: a grant whose reply is on its way (CLIENT UNBLOCK, undo).
//! - `filter.rs`: the command filter (`handoff.rs`, `second_load.rs`, ...).
//! - `propagation.rs`: whether anything (replica, backlog, AOF, save points)
//!   can read what hblock replicates; when nothing can, it is not built.
//! - `ffi/`: the RedisModule calls the crate does not wrap, each once with
//!   its SAFETY note (blocked clients, timer, clock, db, log; `call.rs`:
//!   RM_Call and key positions for FENCED; `persist.rs`: the token floor's
//!   aux data and `HBLOCK.FLOOR`).
//! - `tokens.rs`: the data set's token floor (tokens never repeat), epochs
//!   and the failover delay; `census.rs`: after an unplanned promotion, the
//!   longest lease that can be held back, learnt a slice at a time.
//! - `eviction.rs`: maxmemory: the policy warning, evicted locks, OOM grants.
//! - `record.rs`: the data type (RDB, AOF, digest, copy, memory usage).
//! - `arrival.rs`: records arriving by RESTORE, COPY, RENAME, MOVE, SWAPDB
//!   (no older lease comes back; forged tokens refused).
//! - `command_info.rs`: arity, key specs and COMMAND DOCS.
//! - `config.rs`, `stats.rs`: configs (and loadmodule arguments) and the
//!   `INFO hblock` section.

mod arrival;
mod binding;
mod blocking;
mod census;
mod command_info;
mod commands;
mod config;
mod error;
mod eviction;
mod ffi;
mod filter;
mod handoff;
mod propagation;
mod record;
mod second_load;
mod stats;
mod tokens;
mod watch;

use record::LOCK_TYPE;
use redis_module::configuration::ConfigurationFlags;
use redis_module::{redis_module, Context, RedisString, Status};

// Unit tests run without Redis, so they cannot use Redis's allocator.
#[cfg(not(test))]
type Allocator = redis_module::alloc::RedisAlloc;
#[cfg(not(test))]
const ALLOCATOR: Allocator = redis_module::alloc::RedisAlloc;
#[cfg(test)]
type Allocator = std::alloc::System;
#[cfg(test)]
const ALLOCATOR: Allocator = std::alloc::System;

fn init(ctx: &Context, args: &[RedisString]) -> Status {
    let args: Vec<&[u8]> = args.iter().map(RedisString::as_slice).collect();
    match config::parse_module_args(&args) {
        Ok(parsed) => config::apply(&parsed),
        Err(line) => {
            ctx.log_warning(&line);
            return Status::Err;
        }
    }
    if let Err(name) = command_info::register(ctx.ctx) {
        ctx.log_warning(&format!("hblock: could not set command info of {name:?}"));
        return Status::Err;
    }
    if !blocking::subscribe(ctx.ctx) {
        ctx.log_warning("hblock: could not subscribe to keyspace and server events");
        return Status::Err;
    }
    if !binding::subscribe(ctx.ctx) {
        ctx.log_warning("hblock: could not subscribe to client disconnections");
        return Status::Err;
    }
    if !filter::register(ctx.ctx) {
        ctx.log_warning("hblock: could not register its command filter");
        return Status::Err;
    }
    ffi::init_detached_context(ctx.ctx);
    propagation::init(ctx);
    eviction::warn_if_locks_evictable(ctx);
    // Replaces the crate's default (empty) INFO section with our counters.
    ffi::register_info(ctx.ctx, stats::info_callback);
    Status::Ok
}

redis_module! {
    name: "hblock",
    version: 1,
    allocator: (Allocator, ALLOCATOR),
    data_types: [LOCK_TYPE],
    init: init,
    commands: [
        // Names and flags come from each command's SPEC (src/commands/*.rs).
        [commands::acquire::SPEC.name.to_str().unwrap_or_default(), commands::acquire::run, commands::acquire::SPEC.flags, 1, 1, 1, ""],
        [commands::beat::SPEC.name.to_str().unwrap_or_default(), commands::beat::run, commands::beat::SPEC.flags, 1, 1, 1, ""],
        [commands::release::SPEC.name.to_str().unwrap_or_default(), commands::release::run, commands::release::SPEC.flags, 1, 1, 1, ""],
        [commands::info::SPEC.name.to_str().unwrap_or_default(), commands::info::run, commands::info::SPEC.flags, 1, 1, 1, ""],
        [commands::apply::SPEC.name.to_str().unwrap_or_default(), commands::apply::run, commands::apply::SPEC.flags, 1, 1, 1, ""],
        [commands::check::SPEC.name.to_str().unwrap_or_default(), commands::check::run, commands::check::SPEC.flags, 1, 1, 1, ""],
        [commands::fenced::SPEC.name.to_str().unwrap_or_default(), commands::fenced::run, commands::fenced::SPEC.flags, 1, 1, 1, ""],
        [commands::floor::SPEC.name.to_str().unwrap_or_default(), commands::floor::run, commands::floor::SPEC.flags, 0, 0, 0, ""],
        [commands::watch::SPEC.name.to_str().unwrap_or_default(), commands::watch::run, commands::watch::SPEC.flags, 1, 1, 1, ""],
    ],
    configurations: [
        i64: [
            ["interval", &config::INTERVAL, config::INTERVAL_DEFAULT, config::CONFIGS[0].min, config::CONFIGS[0].max, ConfigurationFlags::DEFAULT, None],
            ["misses", &config::MISSES, config::MISSES_DEFAULT, config::CONFIGS[1].min, config::CONFIGS[1].max, ConfigurationFlags::DEFAULT, None],
            ["failover-delay", &config::FAILOVER_DELAY, config::FAILOVER_DELAY_DEFAULT, config::CONFIGS[2].min, config::CONFIGS[2].max, ConfigurationFlags::DEFAULT, None],
        ],
        string: [],
        bool: [],
        enum: [],
        // Checked by config::parse_module_args in init: unknown names, missing
        // values and out-of-range numbers refuse the load.
        module_args_as_configuration: false,
    ]
}
