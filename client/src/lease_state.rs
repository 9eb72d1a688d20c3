//! What a lease's heartbeat thread and its [`Lease`](crate::lease::Lease)
//! handle share: the send time of the last acknowledged beat, the hook that
//! follows it, why the lease was lost, and the events the heartbeat reports.
//! Below both `lease.rs` and `heartbeat.rs`, so neither imports the other
//! both ways.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Why a lease was lost.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LostReason {
    /// The server answered a beat with NOTHELD (expired, taken over, released).
    NotHeld(String),
    /// No beat succeeded for `interval * misses`: the lease may have ended.
    Unreachable(String),
    /// A beat got an error retrying cannot fix ([`crate::Error::is_fatal`]:
    /// the key overwritten with another type, the ACL or the password
    /// changed): the error and its hint. Stop at once, as on NOTHELD.
    Fatal(String),
}

impl std::fmt::Display for LostReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LostReason::NotHeld(why) => write!(f, "NOTHELD {why}"),
            LostReason::Unreachable(err) => {
                write!(f, "no beat succeeded for a whole lease ({err})")
            }
            LostReason::Fatal(err) => write!(f, "{err}"),
        }
    }
}

/// What the heartbeat reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LeaseEvent {
    /// A beat failed (Redis unreachable or erroring). The lease is safe until
    /// `lease_ends` at the latest; stop the work before then.
    BeatFailed { error: String, lease_ends: Instant },
    /// A beat succeeded again after failures.
    Recovered,
    /// The lease is gone; the heartbeat has stopped.
    Lost(LostReason),
}

/// Extends a watchdog's deadline (or anything else) after each beat.
type OnExtended = Box<dyn Fn(Instant) + Send>;

/// What the heartbeat thread and the [`Lease`](crate::lease::Lease) handle share.
pub(crate) struct Shared {
    last_ok: Mutex<Instant>,
    on_extended: Mutex<Option<OnExtended>>,
    /// Why the lease is lost, once the heartbeat or a fenced write found out.
    lost: Mutex<Option<LostReason>>,
}

impl Shared {
    pub(crate) fn new(last_ok: Instant) -> Shared {
        Shared {
            last_ok: Mutex::new(last_ok),
            on_extended: Mutex::new(None),
            lost: Mutex::new(None),
        }
    }

    /// Calls `hook` after every acknowledged beat from now on.
    pub(crate) fn set_on_extended(&self, hook: OnExtended) {
        if let Ok(mut slot) = self.on_extended.lock() {
            *slot = Some(hook);
        }
    }

    /// The send time of the last acknowledged beat (or of the grant).
    pub(crate) fn last_ok(&self) -> Instant {
        self.last_ok.lock().map_or_else(|e| *e.into_inner(), |t| *t)
    }

    /// The lease is lost: the first reason found stays.
    pub(crate) fn mark_lost(&self, reason: &LostReason) {
        if let Ok(mut lost) = self.lost.lock() {
            lost.get_or_insert_with(|| reason.clone());
        }
    }

    pub(crate) fn lost(&self) -> Option<LostReason> {
        self.lost
            .lock()
            .map_or_else(|e| e.into_inner().clone(), |l| l.clone())
    }

    /// A beat sent at `sent` was acknowledged: the lease lasts until
    /// `sent + lease` at least.
    pub(crate) fn beat_acknowledged(&self, sent: Instant, lease: Duration) {
        if let Ok(mut last_ok) = self.last_ok.lock() {
            *last_ok = sent;
        }
        if let Ok(hook) = self.on_extended.lock() {
            if let Some(hook) = hook.as_ref() {
                hook(sent + lease);
            }
        }
    }
}
