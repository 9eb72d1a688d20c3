//! Module configs: `CONFIG GET/SET hblock.<name>` and loadmodule arguments.
//! Defaults, minimum and maximum of each live in the registration table in
//! lib.rs, beside the statics here.

use crate::args::{INTERVAL_MAX, MISSES_MAX};
use crate::lease::Terms;
use std::sync::atomic::{AtomicI64, Ordering};

pub const INTERVAL_DEFAULT: i64 = 1000;
pub const MISSES_DEFAULT: i64 = 3;

/// `hblock.interval`: heartbeat interval of a new lease when ACQUIRE gives none.
pub static INTERVAL: AtomicI64 = AtomicI64::new(INTERVAL_DEFAULT);
/// `hblock.misses`: allowed missed beats of a new lease when ACQUIRE gives none.
pub static MISSES: AtomicI64 = AtomicI64::new(MISSES_DEFAULT);

/// The terms a new lease gets by default. Redis enforces the ranges on SET;
/// the clamp only guards the conversion.
pub fn default_terms() -> Terms {
    Terms {
        interval_ms: INTERVAL.load(Ordering::Relaxed).clamp(1, INTERVAL_MAX) as u32,
        misses: MISSES.load(Ordering::Relaxed).clamp(1, MISSES_MAX) as u16,
    }
}
