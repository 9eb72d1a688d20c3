//! When `hblock run` stops its child: a pure state machine, fed the lease's
//! events and signals with the time passed in, answering what to send to the
//! child's process group now. The supervisor (`supervise.rs`) does the I/O.
//!
//! - NOTHELD: SIGTERM at once, SIGKILL after `grace`.
//! - Redis unreachable (beats failing): SIGTERM at
//!   `max(now, lease_end - grace - margin)`, SIGKILL at `lease_end - margin`,
//!   so the child is dead before the lease can end on the server and a
//!   standby starts. A beat that gets through before the SIGTERM cancels both.
//! - A signal to the supervisor: forwarded at once; SIGKILL after `grace`.

use std::time::{Duration, Instant};

/// What to send to the child's process group.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Action {
    Term,
    Kill,
}

#[derive(Debug)]
pub struct StopPlan {
    grace: Duration,
    margin: Duration,
    term_at: Option<Instant>,
    kill_at: Option<Instant>,
    termed: bool,
    /// A signal was forwarded: its kill deadline stands whatever beats do.
    signalled: bool,
    /// Why the lease is lost, once it is.
    lost: Option<String>,
    /// Lost to a fatal error (the run then exits 3, not 4).
    fatal: bool,
}

impl StopPlan {
    /// `margin` keeps the kill clear of the lease's end: a quarter interval,
    /// at most 200 ms.
    pub fn new(interval: Duration, grace: Duration) -> StopPlan {
        StopPlan {
            grace,
            margin: (interval / 4).min(Duration::from_millis(200)),
            term_at: None,
            kill_at: None,
            termed: false,
            signalled: false,
            lost: None,
            fatal: false,
        }
    }

    /// How long before the lease's end the child must be dead.
    pub fn margin(&self) -> Duration {
        self.margin
    }

    /// When the child must be dead, for a lease that ends at `lease_ends`.
    pub fn kill_time(&self, lease_ends: Instant) -> Instant {
        lease_ends.checked_sub(self.margin).unwrap_or(lease_ends)
    }

    /// Why the lease was lost, if it was (the run then exits 4).
    pub fn lost(&self) -> Option<&str> {
        self.lost.as_deref()
    }

    /// Whether the lease was lost to a fatal error ([`StopPlan::on_fatal`]).
    pub fn fatal(&self) -> bool {
        self.fatal
    }

    /// A beat got an error no retry fixes: stop as on NOTHELD (SIGTERM now,
    /// SIGKILL after grace); the run exits 3.
    pub fn on_fatal(&mut self, reason: String, now: Instant) -> Vec<Action> {
        self.fatal = true;
        self.on_lost(reason, true, now)
    }

    fn kill_no_later_than(&mut self, at: Instant) {
        self.kill_at = Some(self.kill_at.map_or(at, |k| k.min(at)));
    }

    /// The supervisor got a signal (forwarded by the caller): kill after grace.
    pub fn on_signal(&mut self, now: Instant) {
        self.signalled = true;
        self.kill_no_later_than(now + self.grace);
    }

    /// The lease is gone. `not_held`: the server said so (the child gets its
    /// grace); otherwise no beat got through for a whole lease (kill now).
    pub fn on_lost(&mut self, reason: String, not_held: bool, now: Instant) -> Vec<Action> {
        self.lost = Some(reason);
        self.kill_no_later_than(if not_held { now + self.grace } else { now });
        let mut actions = Vec::new();
        if !self.termed {
            self.termed = true;
            actions.push(Action::Term);
        }
        actions.extend(self.due(now).into_iter().filter(|a| *a == Action::Kill));
        actions
    }

    /// A beat failed; the lease lasts until `lease_ends` at the latest.
    pub fn on_beat_failed(&mut self, lease_ends: Instant, now: Instant) {
        let term = lease_ends
            .checked_sub(self.grace + self.margin)
            .map_or(now, |t| t.max(now));
        self.term_at = Some(self.term_at.map_or(term, |t| t.min(term)));
        self.kill_no_later_than(self.kill_time(lease_ends));
    }

    /// Beats get through again: nothing to stop, unless stopping began (a
    /// SIGTERM sent, or a signal forwarded). True when a planned stop was
    /// cancelled.
    pub fn on_recovered(&mut self) -> bool {
        if self.termed || self.signalled {
            return false;
        }
        let cancelled = self.term_at.is_some() || self.kill_at.is_some();
        self.term_at = None;
        self.kill_at = None;
        cancelled
    }

    /// What is due at `now` (each at most once).
    pub fn due(&mut self, now: Instant) -> Vec<Action> {
        let mut actions = Vec::new();
        if !self.termed && self.term_at.is_some_and(|t| now >= t) {
            self.termed = true;
            self.lost
                .get_or_insert_with(|| "Redis unreachable".to_string());
            actions.push(Action::Term);
        }
        if self.kill_at.is_some_and(|t| now >= t) {
            self.kill_at = None;
            actions.push(Action::Kill);
        }
        actions
    }

    /// How long the supervisor may sleep before something is due (None: until
    /// the next event).
    pub fn next_wake(&self, now: Instant) -> Option<Duration> {
        let term = self.term_at.filter(|_| !self.termed);
        [term, self.kill_at]
            .into_iter()
            .flatten()
            .min()
            .map(|at| at.saturating_duration_since(now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// interval 1000 ms (margin 200), grace 500 ms.
    fn plan() -> (StopPlan, Instant) {
        (StopPlan::new(ms(1000), ms(500)), Instant::now())
    }

    #[test]
    fn notheld_terms_at_once_and_kills_after_grace() {
        let (mut p, t0) = plan();
        assert_eq!(p.on_lost("NOTHELD x".into(), true, t0), [Action::Term]);
        assert_eq!(p.lost(), Some("NOTHELD x"));
        assert_eq!(p.next_wake(t0), Some(ms(500)));
        assert_eq!(p.due(t0 + ms(499)), []);
        assert_eq!(p.due(t0 + ms(500)), [Action::Kill]);
        assert_eq!(p.due(t0 + ms(900)), [], "each action once");
        assert_eq!(p.next_wake(t0 + ms(900)), None);
    }

    #[test]
    fn a_fatal_error_stops_as_notheld_does() {
        let (mut p, t0) = plan();
        assert!(!p.fatal());
        assert_eq!(p.on_fatal("WRONGTYPE x".into(), t0), [Action::Term]);
        assert!(p.fatal());
        assert_eq!(p.lost(), Some("WRONGTYPE x"));
        assert_eq!(p.due(t0 + ms(500)), [Action::Kill]);
    }

    #[test]
    fn unreachable_stops_inside_the_lease() {
        let (mut p, t0) = plan();
        let lease_ends = t0 + ms(3000);
        p.on_beat_failed(lease_ends, t0);
        // SIGTERM at lease end - grace - margin, SIGKILL at lease end - margin.
        assert_eq!(p.next_wake(t0), Some(ms(2300)));
        assert_eq!(p.due(t0 + ms(2299)), []);
        assert_eq!(p.due(t0 + ms(2300)), [Action::Term]);
        assert_eq!(p.lost(), Some("Redis unreachable"));
        assert_eq!(p.next_wake(t0 + ms(2300)), Some(ms(500)));
        assert_eq!(p.due(t0 + ms(2800)), [Action::Kill]);
    }

    #[test]
    fn a_short_lease_terms_at_the_first_failure() {
        let (mut p, t0) = plan();
        p.on_beat_failed(t0 + ms(300), t0);
        assert_eq!(p.due(t0), [Action::Term]);
        assert_eq!(p.due(t0 + ms(100)), [Action::Kill]);
    }

    #[test]
    fn recovery_before_the_term_cancels_the_stop() {
        let (mut p, t0) = plan();
        p.on_beat_failed(t0 + ms(3000), t0);
        assert!(p.on_recovered());
        assert_eq!(p.next_wake(t0), None);
        assert_eq!(p.due(t0 + ms(5000)), []);
        assert_eq!(p.lost(), None);
        // Once stopping began, recovery changes nothing.
        p.on_beat_failed(t0 + ms(3000), t0);
        assert_eq!(p.due(t0 + ms(2300)), [Action::Term]);
        assert!(!p.on_recovered());
        assert_eq!(p.due(t0 + ms(2800)), [Action::Kill]);
    }

    #[test]
    fn loss_after_failures_kills_at_once_and_terms_only_once() {
        let (mut p, t0) = plan();
        p.on_beat_failed(t0 + ms(3000), t0);
        assert_eq!(p.due(t0 + ms(2300)), [Action::Term]);
        let actions = p.on_lost("no beat for a whole lease".into(), false, t0 + ms(2400));
        assert_eq!(actions, [Action::Kill]);
    }

    #[test]
    fn a_signal_kills_after_grace_but_never_later_than_planned() {
        let (mut p, t0) = plan();
        p.on_signal(t0);
        assert_eq!(p.next_wake(t0), Some(ms(500)));
        p.on_beat_failed(t0 + ms(400), t0);
        // The lease's own deadline is earlier: it wins.
        assert_eq!(p.next_wake(t0), Some(Duration::ZERO));
        assert_eq!(p.due(t0 + ms(200)), [Action::Term, Action::Kill]);
        assert_eq!(p.lost(), Some("Redis unreachable"));
    }

    #[test]
    fn beats_never_postpone_or_cancel_a_signals_kill() {
        let (mut p, t0) = plan();
        p.on_signal(t0);
        p.on_beat_failed(t0 + ms(3000), t0); // later than the signal's kill
        assert_eq!(p.next_wake(t0), Some(ms(500)));
        assert!(!p.on_recovered());
        assert_eq!(p.due(t0 + ms(500)), [Action::Kill]);
    }
}
