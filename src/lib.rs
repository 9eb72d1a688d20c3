//! hblock: heartbeat-lease locks inside Redis.
//!
//! # Layout
//! - `lib.rs`: the registration table and module init; nothing else.
//! - `lease.rs`: the pure lease state machine (`now` passed in, no Redis).
//! - `owner.rs`: the binary-safe owner, stored inline when short.
//! - `args.rs`: argument parsing and range checks.
//! - `error.rs`: every error reply, as data.
//! - `commands/`: one file per command (parse -> core -> write/replicate/notify -> reply).
//! - `queue.rs`, `schedule.rs`: the pure wait queues and deadline schedule.
//! - `blocking.rs`: blocked clients, the module timer, key and server events.
//! - `record.rs`: the data type (RDB, AOF, digest, copy, memory usage).
//! - `command_info.rs`: arity, key specs and COMMAND DOCS.
//! - `config.rs`, `stats.rs`: configs and the `INFO hblock` section.

mod args;
mod blocking;
mod command_info;
mod commands;
mod config;
mod error;
mod eviction;
mod filter;
mod handoff;
mod lease;
mod owner;
mod queue;
mod record;
mod schedule;
mod second_load;
mod stats;

use record::LOCK_TYPE;
use redis_module::configuration::ConfigurationFlags;
use redis_module::{raw, redis_module, Context, RedisString, Status};

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
    if !filter::register(ctx.ctx) {
        ctx.log_warning("hblock: could not register its command filter");
        return Status::Err;
    }
    second_load::init(ctx.ctx);
    eviction::warn_if_locks_evictable(ctx);
    // Replaces the crate's default (empty) INFO section with our counters.
    // SAFETY: called during OnLoad with the load context.
    unsafe {
        if let Some(register_info) = raw::RedisModule_RegisterInfoFunc {
            register_info(ctx.ctx, Some(stats::info_callback));
        }
    }
    Status::Ok
}

redis_module! {
    name: "hblock",
    version: 1,
    allocator: (Allocator, ALLOCATOR),
    data_types: [LOCK_TYPE],
    init: init,
    commands: [
        ["hblock.acquire", commands::acquire::run, "write deny-oom", 1, 1, 1, ""],
        ["hblock.beat", commands::beat::run, "write fast", 1, 1, 1, ""],
        ["hblock.release", commands::release::run, "write fast", 1, 1, 1, ""],
        ["hblock.info", commands::info::run, "readonly fast", 1, 1, 1, ""],
        ["hblock.apply", commands::apply::run, "write", 1, 1, 1, ""],
    ],
    configurations: [
        i64: [
            ["interval", &config::INTERVAL, config::INTERVAL_DEFAULT, config::CONFIGS[0].min, config::CONFIGS[0].max, ConfigurationFlags::DEFAULT, None],
            ["misses", &config::MISSES, config::MISSES_DEFAULT, config::CONFIGS[1].min, config::CONFIGS[1].max, ConfigurationFlags::DEFAULT, None],
        ],
        string: [],
        bool: [],
        enum: [],
        // Checked by config::parse_module_args in init: unknown names, missing
        // values and out-of-range numbers refuse the load.
        module_args_as_configuration: false,
    ]
}
