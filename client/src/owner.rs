//! Default owner ids: `host:pid:random`, unique per process.

use std::io::Read;

/// A fresh owner id for this process, e.g. `web-1:4242:9f3a2b1c5d6e7f80`.
pub fn default_owner() -> String {
    format!("{}:{}:{}", hostname(), std::process::id(), random_hex())
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

fn random_hex() -> String {
    let mut bytes = [0u8; 8];
    let filled = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes));
    if filled.is_err() {
        // No /dev/urandom: time and address entropy still differ per process.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        bytes = (nanos ^ (&bytes as *const _ as u64)).to_le_bytes();
    }
    hex(&bytes)
}

/// Bytes as lower-case hex (owners that are not UTF-8, random ids).
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
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
}
