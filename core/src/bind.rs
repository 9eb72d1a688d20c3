//! Leases bound to a client connection (`HBLOCK.ACQUIRE ... BIND ms`): which
//! connection holds which lease, and when a closed connection's leases are
//! due to be released. Pure bookkeeping, the clock passed in: the module
//! feeds it connections that close and asks what is due.
//!
//! A binding names the lease by its token, so one that outlived its lease
//! (released, expired, taken over, the key deleted) never releases a later
//! lease of the same lock: the release itself checks owner and token again.

use crate::queue::LockId;
use std::collections::{BTreeSet, HashMap};

#[derive(Clone, Debug, PartialEq, Eq)]
struct Binding {
    client: u64,
    token: u64,
    grace_ms: u64,
    /// When its connection closed: the release is due at `closed + grace`.
    due: Option<i64>,
}

/// A lease to release because its connection closed and nobody re-bound it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unbound {
    pub lock: LockId,
    pub token: u64,
}

#[derive(Default, Debug)]
pub struct Bindings {
    /// Each lock's bound leases (one on a plain lock; one per holder on a
    /// lock with permits).
    by_lock: HashMap<LockId, Vec<Binding>>,
    /// Open connections -> the leases (lock, token) bound to them.
    by_client: HashMap<u64, Vec<(LockId, u64)>>,
    /// Releases waiting for their grace to pass, by due time.
    due: BTreeSet<(i64, LockId, u64)>,
}

impl Bindings {
    pub fn is_empty(&self) -> bool {
        self.by_lock.is_empty()
    }

    /// Binds the lease `token` of `lock` to connection `client` (a grant or
    /// a re-bind): the binding moves there, a pending release is cancelled.
    pub fn bind(&mut self, lock: LockId, client: u64, token: u64, grace_ms: u64) {
        self.forget(&lock, |b| b.token == token);
        self.by_client
            .entry(client)
            .or_default()
            .push((lock.clone(), token));
        let binding = Binding {
            client,
            token,
            grace_ms,
            due: None,
        };
        self.by_lock.entry(lock).or_default().push(binding);
    }

    /// The lock's holder is now `holder` (0: none): a binding of another
    /// lease is dropped.
    pub fn holder_changed(&mut self, lock: &LockId, holder: u64) {
        if self
            .by_lock
            .get(lock)
            .is_some_and(|v| v.iter().any(|b| b.token != holder))
        {
            self.forget(lock, |b| b.token != holder);
        }
    }

    /// The live leases of a lock with permits are now `tokens`: a binding
    /// of any other lease is dropped.
    pub fn holders_are(&mut self, lock: &LockId, tokens: &[u64]) {
        let stale = |b: &Binding| !tokens.contains(&b.token);
        if self.by_lock.get(lock).is_some_and(|v| v.iter().any(stale)) {
            self.forget(lock, stale);
        }
    }

    /// Whether the lease `token` of `lock` is bound (its connection open,
    /// or closed and its grace still running).
    pub fn is_bound(&self, lock: &LockId, token: u64) -> bool {
        self.by_lock
            .get(lock)
            .is_some_and(|v| v.iter().any(|b| b.token == token))
    }

    /// Connection `client` closed at `now`: each lease bound to it is due
    /// for release after its grace. True when any lease was bound to it.
    pub fn closed(&mut self, client: u64, now: i64) -> bool {
        let Some(leases) = self.by_client.remove(&client) else {
            return false;
        };
        for (lock, token) in leases {
            let bound = self.by_lock.get_mut(&lock).and_then(|v| {
                v.iter_mut()
                    .find(|b| b.token == token && b.client == client && b.due.is_none())
            });
            if let Some(binding) = bound {
                let grace = i64::try_from(binding.grace_ms).unwrap_or(i64::MAX);
                let due = now.saturating_add(grace);
                binding.due = Some(due);
                self.due.insert((due, lock, token));
            }
        }
        true
    }

    /// The earliest pending release.
    pub fn next_due(&self) -> Option<i64> {
        self.due.first().map(|(at, _, _)| *at)
    }

    /// Takes the releases due by `now`; their bindings are gone.
    pub fn take_due(&mut self, now: i64) -> Vec<Unbound> {
        let mut out = Vec::new();
        while let Some((at, _, _)) = self.due.first() {
            if *at > now {
                break;
            }
            let Some((_, lock, token)) = self.due.pop_first() else {
                break;
            };
            if let Some(v) = self.by_lock.get_mut(&lock) {
                v.retain(|b| b.token != token);
                if v.is_empty() {
                    self.by_lock.remove(&lock);
                }
                out.push(Unbound { lock, token });
            }
        }
        out
    }

    /// Drops every binding (this server stopped being a master).
    pub fn clear(&mut self) {
        *self = Bindings::default();
    }

    /// Drops the bindings of `lock` that `which` picks.
    fn forget(&mut self, lock: &LockId, which: impl Fn(&Binding) -> bool) {
        let Some(v) = self.by_lock.get_mut(lock) else {
            return;
        };
        let (gone, kept): (Vec<Binding>, Vec<Binding>) = v.drain(..).partition(|b| which(b));
        *v = kept;
        if v.is_empty() {
            self.by_lock.remove(lock);
        }
        for old in gone {
            match old.due {
                Some(due) => {
                    self.due.remove(&(due, lock.clone(), old.token));
                }
                None => {
                    if let Some(leases) = self.by_client.get_mut(&old.client) {
                        leases.retain(|(l, t)| !(l == lock && *t == old.token));
                        if leases.is_empty() {
                            self.by_client.remove(&old.client);
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lock(name: &str) -> LockId {
        LockId::new(0, name.as_bytes())
    }

    #[test]
    fn a_closed_connection_releases_after_its_grace() {
        let mut b = Bindings::default();
        b.bind(lock("a"), 7, 3, 0);
        b.bind(lock("b"), 7, 4, 500);
        b.bind(lock("c"), 8, 5, 0);
        assert!(b.closed(7, 1000));
        assert!(!b.closed(7, 1000), "already closed");
        assert_eq!(b.next_due(), Some(1000));
        assert_eq!(
            b.take_due(1000),
            vec![Unbound {
                lock: lock("a"),
                token: 3
            }]
        );
        assert!(b.take_due(1499).is_empty());
        assert!(b.is_bound(&lock("b"), 4), "bound while the grace runs");
        assert_eq!(b.take_due(1500).len(), 1);
        assert!(!b.is_bound(&lock("b"), 4));
        assert!(
            b.is_bound(&lock("c"), 5),
            "another connection's lease stays"
        );
    }

    #[test]
    fn a_rebind_within_the_grace_keeps_the_lease() {
        let mut b = Bindings::default();
        b.bind(lock("a"), 7, 3, 500);
        b.closed(7, 1000);
        b.bind(lock("a"), 9, 3, 500);
        assert_eq!(b.next_due(), None);
        assert!(b.take_due(5000).is_empty());
        assert!(!b.closed(7, 2000), "moved away from the closed connection");
        assert!(b.closed(9, 2000));
        assert_eq!(b.take_due(2500).len(), 1);
        assert!(b.is_empty());
    }

    #[test]
    fn moving_a_binding_leaves_the_old_connection() {
        let mut b = Bindings::default();
        b.bind(lock("a"), 7, 3, 0);
        b.bind(lock("a"), 9, 3, 0);
        assert!(!b.closed(7, 1000));
        assert!(b.take_due(1000).is_empty());
        assert!(b.is_bound(&lock("a"), 3));
    }

    #[test]
    fn a_binding_ends_with_its_lease() {
        let mut b = Bindings::default();
        b.bind(lock("a"), 7, 3, 0);
        b.holder_changed(&lock("a"), 3);
        assert!(b.is_bound(&lock("a"), 3), "same holder");
        b.holder_changed(&lock("a"), 0);
        assert!(b.is_empty());
        assert!(!b.closed(7, 1000), "nothing bound to it any more");
        b.bind(lock("a"), 7, 4, 100);
        b.closed(7, 1000);
        b.holder_changed(&lock("a"), 5);
        assert_eq!(
            b.next_due(),
            None,
            "a pending release of an old lease is dropped"
        );
        b.bind(lock("b"), 7, 1, 0);
        b.clear();
        assert!(b.is_empty() && !b.closed(7, 0));
    }

    #[test]
    fn each_holder_of_a_lock_with_permits_has_its_own_binding() {
        let mut b = Bindings::default();
        b.bind(lock("p"), 7, 3, 0);
        b.bind(lock("p"), 8, 4, 100);
        assert!(b.is_bound(&lock("p"), 3) && b.is_bound(&lock("p"), 4));
        assert!(b.closed(8, 1000));
        assert!(b.take_due(1099).is_empty());
        assert_eq!(
            b.take_due(1100),
            vec![Unbound {
                lock: lock("p"),
                token: 4
            }]
        );
        assert!(b.is_bound(&lock("p"), 3), "the other holder stays bound");
        b.bind(lock("p"), 9, 5, 0);
        b.holders_are(&lock("p"), &[5]);
        assert!(!b.is_bound(&lock("p"), 3) && b.is_bound(&lock("p"), 5));
        assert!(!b.closed(7, 0), "its lease ended");
        b.clear();
        assert!(b.is_empty() && !b.closed(7, 0));
    }
}
