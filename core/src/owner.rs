//! The lease owner: a binary-safe byte string of 1 to [`MAX_OWNER_LEN`] bytes.
//!
//! Short owners (the common case) are stored inline in the lock record, so a held
//! lock costs one allocation; longer ones move to the heap. This is what keeps
//! `MEMORY USAGE` of a lock close to that of a plain `SET key owner PX` key.
//!
//! The owner's slot also carries the lock's holder history once a lease end
//! is recorded (`hblock.history` on), and the holders of a lock with permits
//! ([`Owner::Spilled`]): one allocation holding the owner, the history and a
//! pointer to the permits (the history's cap is the record's
//! `Lease::history_cap`, in its padding byte). A record without either stays
//! 80 bytes, exactly as before the history existed.

use crate::history::{self, Entry};
use crate::limits::TIME_MAX_MS;
use crate::permits::Permits;

/// The longest owner accepted, in bytes.
pub const MAX_OWNER_LEN: usize = crate::limits::OWNER_MAX_LEN;

/// Owners up to this many bytes are stored inside the record itself.
const INLINE_CAP: usize = 22;

#[derive(Clone)]
pub enum Owner {
    Inline {
        len: u8,
        bytes: [u8; INLINE_CAP],
    },
    Heap(Box<[u8]>),
    /// The owner (never `Spilled` itself) with the lock's holder history.
    Spilled(Box<Spill>),
}

/// The owner and the holder history of a lock that keeps one.
#[derive(Clone)]
pub struct Spill {
    owner: Owner,
    /// Encoded entries, newest first (`hblock_core::history`).
    history: Box<[u8]>,
    /// The holders of a lock with permits (LIMIT > 1, or holders left
    /// over after a lowered limit); None for a plain lock.
    permits: Option<Box<Permits>>,
}

/// Owners are equal when their bytes, histories and permits are.
impl PartialEq for Owner {
    fn eq(&self, other: &Owner) -> bool {
        self.as_bytes() == other.as_bytes()
            && self.history() == other.history()
            && self.permits() == other.permits()
    }
}

impl Eq for Owner {}

impl Owner {
    /// The empty owner of a free lock.
    pub const fn none() -> Self {
        Owner::Inline {
            len: 0,
            bytes: [0; INLINE_CAP],
        }
    }

    /// Copies `owner` into a new value. Callers validate the length first; an
    /// over-long owner is still stored correctly (on the heap).
    pub fn new(owner: &[u8]) -> Self {
        if owner.len() <= INLINE_CAP {
            let mut bytes = [0; INLINE_CAP];
            bytes[..owner.len()].copy_from_slice(owner);
            Owner::Inline {
                len: owner.len() as u8,
                bytes,
            }
        } else {
            Owner::Heap(owner.into())
        }
    }

    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Owner::Inline { len, bytes } => bytes.get(..usize::from(*len)).unwrap_or(&[]),
            Owner::Heap(bytes) => bytes,
            Owner::Spilled(spill) => spill.owner.as_bytes(),
        }
    }

    /// Sets the owner's bytes, keeping the history.
    pub fn set(&mut self, owner: &[u8]) {
        match self {
            Owner::Spilled(spill) => spill.owner = Owner::new(owner),
            _ => *self = Owner::new(owner),
        }
    }

    /// The encoded holder history (empty when none).
    pub fn history(&self) -> &[u8] {
        match self {
            Owner::Spilled(spill) => &spill.history,
            _ => &[],
        }
    }

    /// Replaces the history (validated by the caller).
    pub fn set_history(&mut self, entries: Box<[u8]>) {
        match self {
            Owner::Spilled(spill) => {
                spill.history = entries;
                self.unspill_if_bare();
            }
            _ if entries.is_empty() => {}
            _ => self.spill(entries),
        }
    }

    /// Puts the lease that just ended (these bytes its owner) at the front
    /// of the history, keeping the newest `cap` entries (`hblock.history`
    /// when the record was last opened for writing, `Lease::history_cap`; a
    /// lowered cap trims here). True when the history changed.
    pub fn push_end(
        &mut self,
        cap: u8,
        token: u64,
        granted_ms: i64,
        ended_ms: i64,
        how: history::How,
    ) -> bool {
        if cap == 0 && self.history().is_empty() {
            return false;
        }
        let owner = self.as_bytes().to_vec();
        self.push_end_of(cap, &owner, (token, granted_ms, ended_ms), how)
    }

    /// As [`push_end`](Owner::push_end), for the lease of `owner` (a holder
    /// of a lock with permits): (token, granted, ended).
    pub fn push_end_of(
        &mut self,
        cap: u8,
        owner: &[u8],
        lease: (u64, i64, i64),
        how: history::How,
    ) -> bool {
        let (token, granted_ms, ended_ms) = lease;
        if cap == 0 && self.history().is_empty() {
            return false;
        }
        // Every time a record holds is checked when it arrives; an end is
        // the server's clock or a deadline: kept within what fits too.
        let entry = Entry {
            owner,
            token,
            granted_ms: granted_ms.clamp(0, TIME_MAX_MS),
            ended_ms: ended_ms.clamp(0, TIME_MAX_MS),
            how,
        };
        let entries = history::pushed(self.history(), &entry, usize::from(cap));
        self.set_history(entries.into_boxed_slice());
        true
    }

    /// The permits of a lock with more than one (None: a plain lock).
    pub fn permits(&self) -> Option<&Permits> {
        match self {
            Owner::Spilled(spill) => spill.permits.as_deref(),
            _ => None,
        }
    }

    pub fn permits_mut(&mut self) -> Option<&mut Permits> {
        match self {
            Owner::Spilled(spill) => spill.permits.as_deref_mut(),
            _ => None,
        }
    }

    /// Sets or drops the permits, keeping the owner and the history.
    pub fn set_permits(&mut self, permits: Option<Permits>) {
        match self {
            Owner::Spilled(spill) => {
                spill.permits = permits.map(Box::new);
                self.unspill_if_bare();
            }
            _ => {
                if let Some(permits) = permits {
                    self.spill(Box::default());
                    if let Owner::Spilled(spill) = self {
                        spill.permits = Some(Box::new(permits));
                    }
                }
            }
        }
    }

    fn spill(&mut self, history: Box<[u8]>) {
        let owner = std::mem::replace(self, Owner::none());
        *self = Owner::Spilled(Box::new(Spill {
            owner,
            history,
            permits: None,
        }));
    }

    /// Back to the bare owner when the spill holds nothing more.
    fn unspill_if_bare(&mut self) {
        let bare = match self {
            Owner::Spilled(spill) => spill.history.is_empty() && spill.permits.is_none(),
            _ => false,
        };
        if bare {
            if let Owner::Spilled(spill) = std::mem::replace(self, Owner::none()) {
                *self = spill.owner;
            }
        }
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.as_bytes().is_empty()
    }

    /// The separate heap allocation behind a long owner, if any (for MEMORY USAGE).
    pub fn heap_ptr(&self) -> Option<*const u8> {
        match self {
            Owner::Inline { .. } => None,
            Owner::Heap(bytes) => Some(bytes.as_ptr()),
            Owner::Spilled(spill) => spill.owner.heap_ptr(),
        }
    }

    /// The allocations of a history, if any: the spill (its address and
    /// size) and the entries' buffer (for MEMORY USAGE).
    pub fn history_allocations(&self) -> [Option<(*const u8, usize)>; 3] {
        match self {
            Owner::Spilled(spill) => {
                let whole = (&**spill as *const Spill).cast::<u8>();
                let entries = (!spill.history.is_empty())
                    .then_some((spill.history.as_ptr(), spill.history.len()));
                let permits = spill.permits.as_deref().map(|p| {
                    (
                        (p as *const Permits).cast::<u8>(),
                        std::mem::size_of::<Permits>(),
                    )
                });
                [
                    Some((whole, std::mem::size_of::<Spill>())),
                    entries,
                    permits,
                ]
            }
            _ => [None, None, None],
        }
    }
}

impl std::fmt::Debug for Owner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Owner({:?})", String::from_utf8_lossy(self.as_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_length_class() {
        for len in [0, 1, 17, INLINE_CAP, INLINE_CAP + 1, MAX_OWNER_LEN] {
            let bytes: Vec<u8> = (0..len).map(|i| (i % 256) as u8).collect();
            let owner = Owner::new(&bytes);
            assert_eq!(owner.as_bytes(), &bytes[..], "length {len}");
            assert_eq!(owner.heap_ptr().is_some(), len > INLINE_CAP, "length {len}");
        }
    }

    #[test]
    fn binary_bytes_survive() {
        let bytes = b"\0\xff\r\n owner\0";
        assert_eq!(Owner::new(bytes).as_bytes(), bytes);
        assert!(Owner::none().is_empty());
    }
}
