//! Every direct call of a `RedisModule_*` function pointer (and of the
//! crate's thin `raw::` helpers over them) in the module is here, each
//! wrapped once with its SAFETY argument, so the rest of the module calls
//! plain functions; elsewhere only the crate's safe API (`Context`, keys,
//! `RedisString`) is used. Every function pointer is filled in by
//! `RedisModule_Init` before any of our code runs; a missing one (an older
//! server) makes the wrapper do nothing and say so in its return value.
//!
//! All of these run on Redis's main thread, as Redis calls modules there.
//!
//! Layout: `base.rs` (types, clock, context, log, the cached role),
//! `command.rs` (registering a command, running it on its argv), `reply.rs`, `blocked.rs`
//! (blocked clients, timers), `load.rs` (set up once at load), `filter.rs`
//! (the command filter's arguments), `keys.rs` (keys, scans, propagating
//! the module's commands), `datatype.rs` (RDB, AOF, digest, memory usage),
//! `call.rs` (RM_Call for FENCED), `persist.rs` (the token floor). They
//! import each other's files, never this one; the rest of the module
//! imports `ffi::...` (re-exported here).

mod base;
mod blocked;
mod call;
mod command;
mod datatype;
mod filter;
mod keys;
mod load;
mod persist;
mod reply;

pub use base::*;
pub use blocked::*;
pub use call::*;
pub use command::*;
pub use datatype::*;
pub use filter::*;
pub use keys::*;
pub use load::*;
pub use persist::*;
pub use reply::*;
