//! The lease owner: a binary-safe byte string of 1 to [`MAX_OWNER_LEN`] bytes.
//!
//! Short owners (the common case) are stored inline in the lock record, so a held
//! lock costs one allocation; longer ones move to the heap. This is what keeps
//! `MEMORY USAGE` of a lock close to that of a plain `SET key owner PX` key.

/// The longest owner accepted, in bytes.
pub const MAX_OWNER_LEN: usize = crate::limits::OWNER_MAX_LEN;

/// Owners up to this many bytes are stored inside the record itself.
const INLINE_CAP: usize = 22;

#[derive(Clone, PartialEq, Eq)]
pub enum Owner {
    Inline { len: u8, bytes: [u8; INLINE_CAP] },
    Heap(Box<[u8]>),
}

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
