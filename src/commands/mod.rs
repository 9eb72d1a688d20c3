//! One file per command: its spec, parse, the services and the store, the
//! reply. What several of them share is in `common.rs`; the list of them
//! (registration order) is lib.rs's table.

pub mod acquire;
pub mod apply;
pub mod beat;
pub mod check;
mod common;
pub mod fenced;
pub mod floor;
pub mod history;
pub mod holders;
pub mod info;
pub mod limit;
pub mod release;
pub mod waiters;
pub mod watch;
