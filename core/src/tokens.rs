//! Tokens that never repeat: the data set's floor (the highest token it has
//! handed out or seen) and its epochs.
//!
//! A token is `epoch * 2^32 + n`. Every new lease, of any key, gets a token
//! above the floor, so a key that is deleted, flushed, evicted or restored
//! from an old DUMP never sees an old token again. A promotion (or a restart
//! of a master from its files) starts a new epoch: the floor jumps to the
//! next multiple of 2^32, above every token the old master can have handed
//! out in its epoch, even grants that never reached this server. Tokens stay
//! below 2^53 (exact in Lua and JSON) for 2^20 epochs of 2^32 grants each.

/// Bits of a token below its epoch.
pub const EPOCH_SHIFT: u32 = 32;

/// The failover-delay setting that means "the longest lease".
pub const DELAY_AUTO: i64 = -1;

/// The last token the data set handed out or saw (0: none yet).
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub struct Floor(pub u64);

impl Floor {
    /// A token seen in a record (granted here, replicated, loaded).
    pub fn observe(&mut self, token: u64) {
        self.0 = self.0.max(token);
    }

    /// Promotions and restarts seen by this data (the token's high bits).
    pub fn epoch(self) -> u64 {
        self.0 >> EPOCH_SHIFT
    }

    /// A new epoch: the floor moves to its start.
    pub fn new_epoch(&mut self) {
        let next = self.epoch().saturating_add(1);
        self.0 = self.0.max(next.saturating_mul(1 << EPOCH_SHIFT));
    }
}

/// How long, after an unplanned promotion, grants of one lock that is not
/// held wait: the configured ms, or with `DELAY_AUTO` the lease length
/// (`interval * misses`) of the lock's own last lease, or for a key with no
/// record the default terms' lease length. The delay guards against a
/// grant the old master made and never sent; the best guess of its terms is
/// the lock's own last terms (or the defaults for a key never locked here).
pub fn failover_delay(configured: i64, lock_lease_ms: Option<i64>, default_lease_ms: i64) -> i64 {
    if configured == DELAY_AUTO {
        lock_lease_ms.unwrap_or(default_lease_ms).max(0)
    } else {
        configured.max(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_floor_only_grows_and_epochs_jump_past_a_whole_epoch() {
        let mut f = Floor::default();
        f.observe(5);
        f.observe(3);
        assert_eq!((f.0, f.epoch()), (5, 0));
        f.new_epoch();
        assert_eq!((f.0, f.epoch()), (1 << 32, 1));
        // The old master may have handed out up to 2^32 - 1 in epoch 0: all below.
        assert!(f.0 > (1 << 32) - 1);
        f.observe(7);
        f.new_epoch();
        assert_eq!(f.0, 2 << 32);
        // A floor that ran past its epoch's range still moves up.
        let mut g = Floor((3 << 32) + 5);
        g.new_epoch();
        assert_eq!(g.0, 4 << 32);
        // 2^20 epochs of 2^32 grants stay below 2^53.
        let mut h = Floor(0);
        for _ in 0..(1 << 20) - 1 {
            h.new_epoch();
        }
        assert!(h.0 + (1 << 32) < 1 << 53);
        let mut top = Floor(u64::MAX - 1);
        top.new_epoch();
        assert_eq!(top.0, u64::MAX);
    }

    #[test]
    fn delays_are_per_lock() {
        // Auto: the lock's own last lease, or the defaults for a new key.
        assert_eq!(failover_delay(DELAY_AUTO, Some(1_800_000), 3000), 1_800_000);
        assert_eq!(failover_delay(DELAY_AUTO, Some(600), 3000), 600);
        assert_eq!(failover_delay(DELAY_AUTO, None, 3000), 3000);
        // Explicit: the same for every lock; 0 is off.
        assert_eq!(failover_delay(0, Some(1_800_000), 3000), 0);
        assert_eq!(failover_delay(250, None, 3000), 250);
        assert_eq!(failover_delay(DELAY_AUTO, Some(-5), 3000), 0);
    }
}
