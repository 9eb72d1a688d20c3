//! hblock: heartbeat-lease locks inside Redis.
//!
//! # Layout
//! Every import points down (docs/architecture.md draws the layers and
//! says what each file may import; `scripts/import_graph.py`, run by
//! `make lint`, fails on any circle). From the top:
//!
//! - `lib.rs`: the registration table (the one list of commands) and init.
//! - Entry points. `commands/`: one file per command (spec, parse, call
//!   the services and the store, reply); `common.rs` what they share.
//!   `events/`: every other callback Redis calls: the module timer
//!   (`timer.rs`), keyspace and server events, client disconnections, the
//!   command filter, the `INFO hblock` section.
//! - Services. `waiters.rs`: blocked ACQUIREs (block, serve, reply,
//!   leave). `view.rs`: read-only views of a lock (CHECK's verdict, INFO's
//!   reply).
//! - `store.rs`: opens lock keys, reads and creates records, and commits a
//!   change (write, replicate, notify, count, schedule): the only place.
//! - `datatype.rs`: the `hblock-lk` type and its callbacks (RDB, AOF,
//!   digest, copy, memory usage, free, unlink); `second_load.rs`.
//! - Wait state and registries. `blocking.rs`: queues, deadline schedule,
//!   pending keys, the armed module timer (its handler is handed down at
//!   load). `watch.rs` (HBLOCK.WATCH's watchers), `binding.rs` (BIND),
//!   `handoff.rs` (replies on their way), `tokens.rs` and `census.rs` (the
//!   token floor, epochs, the failover delay), `arrival.rs` (records
//!   arriving by RESTORE, COPY, RENAME, MOVE, SWAPDB), `propagation.rs`
//!   (whether anything reads what is replicated), `eviction.rs`.
//! - The bottom. `ffi/`: every RedisModule call, each once with its SAFETY
//!   note (`ffi::now_ms` is the clock). `config.rs`: configs by name and
//!   loadmodule arguments. `error.rs`: error replies as data. `spec.rs`:
//!   command metadata (COMMAND INFO/DOCS). `stats.rs`: INFO's counters.
//! - `core/` (crate `hblock-core`, imported as `hblock_core::...`; no Redis
//!   dependency, so the compiler keeps it pure): `lease` (the state
//!   machine, `now` passed in), `queue`, `schedule`, `checks`, `bind`,
//!   `record` (a record's fields and encodings), `history` (the holder
//!   history's entries), `args` (parsing, errors as data), `owner`,
//!   `limits`, `proto`, `tokens`, `varint`.

mod arrival;
mod binding;
mod blocking;
mod census;
mod commands;
mod config;
mod datatype;
mod error;
mod events;
mod eviction;
mod ffi;
mod handoff;
mod propagation;
mod second_load;
mod spec;
mod stats;
mod store;
mod tokens;
mod view;
mod waiters;
mod watch;

use datatype::LOCK_TYPE;
use redis_module::configuration::ConfigurationFlags;
use redis_module::{redis_module, Context, RedisString, Status};
use std::ffi::CString;

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
    for (spec, callback) in COMMANDS {
        let created = CString::new(spec.flags).is_ok_and(|flags| {
            ffi::create_command(ctx.ctx, spec.name, callback, &flags, spec.first_key())
        });
        if !created {
            ctx.log_warning(&format!("Error: failed to create command {:?}", spec.name));
            return Status::Err;
        }
    }
    ffi::read_role();
    blocking::set_timer_handler(events::timer::on_timer);
    let args: Vec<&[u8]> = args.iter().map(RedisString::as_slice).collect();
    match config::parse_module_args(&args) {
        Ok(parsed) => config::apply(&parsed),
        Err(line) => {
            ctx.log_warning(&line);
            return Status::Err;
        }
    }
    if let Err(name) = spec::register(ctx.ctx, &SPECS) {
        ctx.log_warning(&format!("hblock: could not set command info of {name:?}"));
        return Status::Err;
    }
    if !events::keyspace::subscribe(ctx.ctx) || !events::server::subscribe(ctx.ctx) {
        ctx.log_warning("hblock: could not subscribe to keyspace and server events");
        return Status::Err;
    }
    if !events::clients::subscribe(ctx.ctx) {
        ctx.log_warning("hblock: could not subscribe to client disconnections");
        return Status::Err;
    }
    if !events::filter::register(ctx.ctx) {
        ctx.log_warning("hblock: could not register its command filter");
        return Status::Err;
    }
    ffi::init_detached_context(ctx.ctx);
    propagation::init(ctx);
    eviction::warn_if_locks_evictable(ctx);
    // Replaces the crate's default (empty) INFO section with our counters.
    ffi::register_info(ctx.ctx, events::info::info_callback);
    Status::Ok
}

/// The registration table: each command's module, in registration order,
/// written once. It expands to [`SPECS`] (COMMAND INFO/DOCS, spec.rs) and
/// to [`COMMANDS`], which `init` registers (name, flags and key positions
/// read from each command's `SPEC`; the entry point `ffi::run_command`,
/// which lends the handler the call's arguments without copying them).
macro_rules! hblock_module {
    ($($($command:ident)::+),* $(,)?) => {
        /// Every command's spec, in registration order.
        const SPECS: [&spec::Spec; [$(stringify!($($command)::+)),*].len()] =
            [$(&$($command)::+::SPEC),*];

        /// Every command's spec and entry point, in registration order.
        const COMMANDS: [(&spec::Spec, ffi::CommandCallback); SPECS.len()] = [$({
            extern "C" fn call(
                ctx: ffi::Ctx,
                argv: *mut *mut redis_module::raw::RedisModuleString,
                argc: std::ffi::c_int,
            ) -> std::ffi::c_int {
                ffi::run_command(ctx, argv, argc, $($command)::+::run)
            }
            (&$($command)::+::SPEC, call as ffi::CommandCallback)
        }),*];

        redis_module! {
            name: "hblock",
            version: 1,
            allocator: (Allocator, ALLOCATOR),
            data_types: [LOCK_TYPE],
            init: init,
            // Registered by init, from COMMANDS.
            commands: [],
            configurations: [
                i64: [
                    [config::INTERVAL_CONFIG.name, &config::INTERVAL, config::INTERVAL_CONFIG.default, config::INTERVAL_CONFIG.min, config::INTERVAL_CONFIG.max, ConfigurationFlags::DEFAULT, None],
                    [config::MISSES_CONFIG.name, &config::MISSES, config::MISSES_CONFIG.default, config::MISSES_CONFIG.min, config::MISSES_CONFIG.max, ConfigurationFlags::DEFAULT, None],
                    [config::FAILOVER_DELAY_CONFIG.name, &config::FAILOVER_DELAY, config::FAILOVER_DELAY_CONFIG.default, config::FAILOVER_DELAY_CONFIG.min, config::FAILOVER_DELAY_CONFIG.max, ConfigurationFlags::DEFAULT, None],
                    [config::HISTORY_CONFIG.name, &config::HISTORY, config::HISTORY_CONFIG.default, config::HISTORY_CONFIG.min, config::HISTORY_CONFIG.max, ConfigurationFlags::DEFAULT, None],
                ],
                string: [],
                bool: [],
                enum: [],
                // Checked by config::parse_module_args in init: unknown names, missing
                // values and out-of-range numbers refuse the load.
                module_args_as_configuration: false,
            ]
        }
    };
}

hblock_module![
    commands::acquire,
    commands::beat,
    commands::release,
    commands::info,
    commands::apply,
    commands::check,
    commands::fenced,
    commands::floor,
    commands::watch,
    commands::waiters,
    commands::history,
    commands::holders,
    commands::limit,
];
