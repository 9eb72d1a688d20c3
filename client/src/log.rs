//! The supervisor's log lines on stderr: an RFC 3339 timestamp (UTC, ms),
//! then the message. `--quiet` keeps only errors; `--verbose` adds a line
//! per retry. A failing condition ([`Condition`]) is logged once when it
//! starts and once when it ends, never per retry.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

static QUIET: AtomicBool = AtomicBool::new(false);
static VERBOSE: AtomicBool = AtomicBool::new(false);

/// Errors only from now on (`--quiet`).
pub fn set_quiet(quiet: bool) {
    QUIET.store(quiet, Ordering::Relaxed);
}

/// A line per retry from now on (`--verbose`).
pub fn set_verbose(verbose: bool) {
    VERBOSE.store(verbose, Ordering::Relaxed);
}

/// Per-retry detail: only with `--verbose`.
pub fn debug(message: &str) {
    if VERBOSE.load(Ordering::Relaxed) {
        eprintln!("{}", line(message));
    }
}

/// A condition that can fail for a while (Redis unreachable, loading, ...)
/// for one subject (the lock's key, or a command's name) at one URL
/// (password masked): logged once when it starts failing,
/// `{KEY}: {URL} failing: {ERROR}; retrying`, and once when it ends,
/// `{KEY}: {URL} recovered after {SECONDS} s`; each retry in between only
/// with `--verbose`.
#[derive(Debug)]
pub struct Condition {
    subject: String,
    url: String,
    since: Option<Instant>,
}

impl Condition {
    pub fn new(subject: &str, masked_url: &str) -> Condition {
        Condition {
            subject: subject.to_string(),
            url: masked_url.to_string(),
            since: None,
        }
    }

    /// Whether the condition is failing now.
    pub fn is_failing(&self) -> bool {
        self.since.is_some()
    }

    /// An attempt failed with `error`.
    pub fn failed(&mut self, error: &dyn std::fmt::Display) {
        let (subject, url) = (&self.subject, &self.url);
        if self.since.is_none() {
            self.since = Some(Instant::now());
            self.report(&format!("{subject}: {url} failing: {error}; retrying"));
        } else {
            debug(&format!(
                "{subject}: {url} still failing: {error}; retrying"
            ));
        }
    }

    /// An attempt got through.
    pub fn recovered(&mut self) {
        if let Some(since) = self.since.take() {
            let seconds = since.elapsed().as_secs_f64();
            self.report(&format!(
                "{}: {} recovered after {seconds:.1} s",
                self.subject, self.url
            ));
        }
    }

    fn report(&self, message: &str) {
        error(message);
    }
}

fn line(message: &str) -> String {
    let now = humantime::format_rfc3339_millis(std::time::SystemTime::now());
    format!("{now} hblock: {}", escape_controls(message))
}

/// A log line stays one line of text: `\n`, `\r`, `\t` and the other
/// control characters (NUL, ESC, ...) as `\u{..}`, whatever an owner or a
/// check's output holds. The CLI's text output escapes keys and owners the
/// same way (output.rs).
pub fn escape_controls(message: &str) -> String {
    if !message.chars().any(char::is_control) {
        return message.to_string();
    }
    let mut out = String::with_capacity(message.len() + 8);
    for c in message.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", u32::from(c))),
            c => out.push(c),
        }
    }
    out
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
    fn control_characters_are_escaped() {
        let l = super::line("owner a\nb\r\t\u{1b}[31m\u{0}é");
        assert!(l.ends_with("owner a\\nb\\r\\t\\u{1b}[31m\\u{0}é"), "{l}");
        assert!(!l.chars().any(char::is_control), "{l}");
    }

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
