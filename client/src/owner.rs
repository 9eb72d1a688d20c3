//! Owner ids, unique per process: `host:pid:random` when none is given, and
//! `given/random` for a given one (two processes started with the same
//! `--owner` must never share a lease: re-acquiring is idempotent for the
//! holder, so a shared owner would let both run).

use std::io::Read;

/// A fresh owner id for this process, e.g. `web-1:4242:9f3a2b1c5d6e7f80`.
pub fn default_owner() -> String {
    format!("{}:{}:{}", hostname(), std::process::id(), random_hex(8))
}

/// A given owner made unique to this process: `web-1` -> `web-1/4f3a9c0d`.
pub fn instance_owner(given: &[u8]) -> Vec<u8> {
    let mut owner = given.to_vec();
    owner.push(b'/');
    owner.extend_from_slice(random_hex(4).as_bytes());
    owner
}

fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into buf.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "localhost".into();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// `n` random bytes as hex.
fn random_hex(n: usize) -> String {
    let mut bytes = [0u8; 8];
    let n = n.min(bytes.len());
    let filled = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes));
    if filled.is_err() {
        // No /dev/urandom: time and address entropy still differ per process.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        bytes = (nanos ^ (&bytes as *const _ as u64)).to_le_bytes();
    }
    hex(bytes.get(..n).unwrap_or(&bytes))
}

/// Bytes as lower-case hex (owners that are not UTF-8, random ids).
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The owner for display: the bytes as UTF-8, or 0x-prefixed hex when they are not.
pub fn owner_text(owner: &[u8]) -> String {
    match std::str::from_utf8(owner) {
        Ok(s) => s.to_string(),
        Err(_) => format!("0x{}", hex(owner)),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn owners_differ_and_have_three_parts() {
        let a = super::default_owner();
        let b = super::default_owner();
        assert_ne!(a, b);
        assert_eq!(a.split(':').count(), 3, "{a}");
        assert!(a.contains(&std::process::id().to_string()));
    }

    #[test]
    fn a_given_owner_gets_an_instance_part() {
        let a = String::from_utf8(super::instance_owner(b"web-1")).expect("utf-8");
        let b = String::from_utf8(super::instance_owner(b"web-1")).expect("utf-8");
        assert_ne!(a, b);
        let (given, part) = a.split_once('/').expect("given/instance");
        assert_eq!((given, part.len()), ("web-1", 8));
        assert!(part.bytes().all(|c| c.is_ascii_hexdigit()));
    }
}
