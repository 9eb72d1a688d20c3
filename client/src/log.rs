//! The supervisor's log lines on stderr: an RFC 3339 timestamp (UTC, ms),
//! then the message. `--quiet` keeps only errors.

use std::sync::atomic::{AtomicBool, Ordering};

static QUIET: AtomicBool = AtomicBool::new(false);

/// Errors only from now on (`--quiet`).
pub fn set_quiet(quiet: bool) {
    QUIET.store(quiet, Ordering::Relaxed);
}

fn line(message: &str) -> String {
    let now = humantime::format_rfc3339_millis(std::time::SystemTime::now());
    format!("{now} hblock: {message}")
}

/// What the supervisor does: waiting, acquired, started, exited, released.
pub fn info(message: &str) {
    if !QUIET.load(Ordering::Relaxed) {
        eprintln!("{}", line(message));
    }
}

/// What went wrong: failed beats, a lost lease, a child that could not start.
pub fn error(message: &str) {
    eprintln!("{}", line(message));
}

#[cfg(test)]
mod tests {
    #[test]
    fn lines_start_with_an_rfc3339_utc_timestamp() {
        let l = super::line("x");
        let (stamp, rest) = l.split_once(' ').expect("stamp and message");
        assert_eq!(rest, "hblock: x");
        // 2026-11-27T19:40:01.123Z
        assert_eq!(stamp.len(), 24, "{stamp}");
        assert!(stamp.ends_with('Z') && stamp.as_bytes().get(10) == Some(&b'T'));
        assert!(humantime::parse_rfc3339(stamp).is_ok(), "{stamp}");
    }
}
