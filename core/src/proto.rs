//! What the module answers and the clients read, named once: INFO's field
//! names in reply order, and the error prefix of a caller that does not hold
//! the lease. The module (src/view.rs, src/error.rs) and the client
//! crate (client/src/commands.rs, client/src/error.rs) both use these.

/// HBLOCK.INFO's integer fields, in reply order (after `state` and `owner`).
pub const INFO_NUMBERS: [&str; 12] = [
    "token",
    "interval",
    "misses",
    "missed",
    "ttl",
    "beats",
    "age",
    "takeovers",
    "waiters",
    "bound",
    "limit",
    "holders",
];

/// HBLOCK.HOLDERS: the fields of each holder, in reply order (INFO's
/// per-lease fields; `owner` a bulk string, the others integers).
pub const HOLDER_FIELDS: [&str; 9] = [
    "owner", "token", "interval", "misses", "missed", "ttl", "beats", "age", "bound",
];

/// The error code of BEAT (and FENCED, CHECK) by a caller that does not hold
/// the live lease: `NOTHELD <why>`.
pub const NOTHELD: &str = "NOTHELD";

/// INFO's `state` of a lock (a missing key included) that is not held and
/// whose grants are held back after a promotion (the failover delay); its
/// `ttl` is the delay left.
pub const STATE_HELD_BACK: &str = "held-back";

/// HBLOCK.WAITERS: the fields of each waiter, in reply order (`owner` a
/// bulk string, the others integers).
pub const WAITER_FIELDS: [&str; 4] = ["owner", "waited", "timeout", "client"];

/// HBLOCK.HISTORY: the fields of each lease end, in reply order (`owner`
/// and `how` bulk strings, the others integers).
pub const HISTORY_FIELDS: [&str; 5] = ["owner", "token", "granted", "ended", "how"];
