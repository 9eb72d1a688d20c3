//! Every callback Redis calls that is not a command or the data type's:
//! the module timer (`timer.rs`), keyspace events (`keyspace.rs`), server
//! events (`server.rs`), client changes (`clients.rs`), the command filter
//! (`filter.rs`) and the INFO section (`info.rs`). They sit on top with the
//! commands: each is registered once from lib.rs's init, and work they find
//! inside a notification is done from the timer.

pub mod clients;
pub mod filter;
pub mod info;
pub mod keyspace;
pub mod server;
pub mod timer;
