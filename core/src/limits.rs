//! Every limit and default of the protocol, stated once. The module (configs,
//! argument parsing, record validation) and the client crate (CLI ranges,
//! `LeaseOptions::default`) both read them from here.

/// Heartbeat interval of a lease, ms (INTERVAL, `hblock.interval`).
pub const INTERVAL_MIN: i64 = 1;
pub const INTERVAL_MAX: i64 = 86_400_000;
pub const INTERVAL_DEFAULT: i64 = 1000;

/// Missed beats a lease allows (MISSES, `hblock.misses`).
pub const MISSES_MIN: i64 = 1;
pub const MISSES_MAX: i64 = 10_000;
pub const MISSES_DEFAULT: i64 = 3;

/// Longest WAIT of a blocking ACQUIRE, ms: 365 days. 0 waits without limit.
pub const WAIT_MAX: i64 = 31_536_000_000;

/// Permits of a lock: how many owners may hold it at once (LIMIT,
/// HBLOCK.LIMIT). 1 is the plain lock.
pub const LIMIT_MIN: u16 = 1;
pub const LIMIT_MAX: u16 = 1000;

/// An owner is 1 to this many bytes.
pub const OWNER_MAX_LEN: usize = 1024;

/// Fencing tokens given as arguments are 1 to this (exact as i64; counters
/// stop here too).
pub const TOKEN_MAX: i64 = i64::MAX;

/// The last token a lease is granted: 2^53 - 1, so every token is exact in
/// Lua, JSON and JavaScript numbers.
pub const TOKEN_ISSUE_MAX: u64 = (1 << 53) - 1;

/// The times a record holds (grants, beats, ends; Unix ms) lie within
/// 0..=this: 9999-12-31T23:59:59.999Z. A record from RESTORE, APPLY or an
/// RDB with a time outside is refused, so every lease end it can record
/// fits its history (history::fits) and saves and loads again.
pub const TIME_MAX_MS: i64 = 253_402_300_799_999;

/// Whether `ms` is a time a record may hold (0..=[`TIME_MAX_MS`]).
pub fn time_fits(ms: i64) -> bool {
    (0..=TIME_MAX_MS).contains(&ms)
}

/// A record brought in by RESTORE (a DUMP payload: any user with `+restore`
/// can forge one) must carry a token below this, 2^52. The floor it raises
/// then still leaves 2^52 tokens (2^20 epochs of 2^32 grants) below 2^53.
pub const RESTORE_TOKEN_LIMIT: u64 = 1 << 52;
