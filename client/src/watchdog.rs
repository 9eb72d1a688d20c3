//! The watchdog of `hblock run`: a small process of its own (this binary run
//! as `hblock __hblock_watchdog`, in its own process group) that SIGKILLs the
//! child's process group at the lease's deadline unless the supervisor has
//! pushed the deadline forward. A supervisor stopped with SIGSTOP, frozen in
//! a debugger or starved of CPU cannot stop its child; the watchdog, not
//! stopped with it, can. When the supervisor dies (its end of the pipe
//! closes) the watchdog kills the group at once: that reaches grandchildren
//! the parent-death signal does not.
//!
//! The supervisor writes 16-byte messages on the watchdog's stdin: a tag and
//! a value. Times are CLOCK_BOOTTIME nanoseconds, a clock both processes
//! share that keeps counting through a system suspend (the lease on the
//! server does too).

use std::io::{Read, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Mutex;
use std::time::Instant;

/// argv[1] that makes `hblock` the watchdog.
pub const ARG: &str = "__hblock_watchdog";

const GROUP: u64 = 1;
const DEADLINE: u64 = 2;
const DISARM: u64 = 3;

/// CLOCK_BOOTTIME in nanoseconds.
pub fn boottime_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec.
    unsafe {
        libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts);
    }
    (ts.tv_sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(ts.tv_nsec as u64)
}

/// The watchdog's decisions, the clock passed in.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct State {
    pgid: Option<u32>,
    deadline: Option<u64>,
    disarmed: bool,
}

/// What the watchdog does next.
#[derive(Debug, PartialEq, Eq)]
pub enum Next {
    /// Wait for a message, at most this many ns (None: without limit).
    Wait(Option<u64>),
    /// SIGKILL this process group, then exit.
    Kill(u32),
    Exit,
}

impl State {
    pub fn on_message(&mut self, tag: u64, value: u64) {
        match tag {
            GROUP => self.pgid = u32::try_from(value).ok().filter(|p| *p > 1),
            DEADLINE => self.deadline = Some(value),
            DISARM => self.disarmed = true,
            _ => {}
        }
    }

    /// `eof`: the supervisor's end of the pipe closed.
    pub fn next(&self, now: u64, eof: bool) -> Next {
        match self.pgid {
            _ if self.disarmed => Next::Exit,
            None if eof => Next::Exit,
            Some(pgid) if eof => Next::Kill(pgid),
            Some(pgid) if self.deadline.is_some_and(|d| now >= d) => Next::Kill(pgid),
            _ => Next::Wait(self.deadline.map(|d| d.saturating_sub(now))),
        }
    }
}

fn ignore_terminal_signals() {
    for sig in [
        libc::SIGHUP,
        libc::SIGINT,
        libc::SIGQUIT,
        libc::SIGTSTP,
        libc::SIGTTIN,
        libc::SIGTTOU,
        libc::SIGPIPE,
    ] {
        // SAFETY: setting a signal's disposition to SIG_IGN.
        unsafe {
            libc::signal(sig, libc::SIG_IGN);
        }
    }
}

/// Waits until stdin is readable or `ns` passed. True: readable (or closed).
fn readable_within(ns: Option<u64>) -> bool {
    let timeout = ns.map_or(-1, |ns| ns.div_ceil(1_000_000).min(i32::MAX as u64) as i32);
    let mut fd = libc::pollfd {
        fd: 0,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: poll on one pollfd that lives for the call.
    let n = unsafe { libc::poll(&mut fd, 1, timeout) };
    n > 0
}

/// The watchdog process's main; returns its exit code.
pub fn main() -> i32 {
    ignore_terminal_signals();
    let mut state = State::default();
    let mut stdin = std::io::stdin().lock();
    let mut buf = Vec::new();
    let mut eof = false;
    loop {
        match state.next(boottime_ns(), eof) {
            Next::Exit => return 0,
            Next::Kill(pgid) => {
                // SAFETY: kill(2) of the process group the supervisor named.
                unsafe {
                    libc::kill(-(pgid as libc::pid_t), libc::SIGKILL);
                }
                let why = if eof {
                    "the supervisor is gone"
                } else {
                    "the lease's deadline passed and the supervisor did not extend it"
                };
                crate::log::error(&format!("watchdog: {why}: killed process group {pgid}"));
                return 0;
            }
            Next::Wait(ns) => {
                if !readable_within(ns) {
                    continue;
                }
                let mut chunk = [0u8; 256];
                match stdin.read(&mut chunk) {
                    Ok(0) | Err(_) => eof = true,
                    Ok(n) => buf.extend_from_slice(chunk.get(..n).unwrap_or(&[])),
                }
                while buf.len() >= 16 {
                    let word = |at: usize| {
                        let mut b = [0u8; 8];
                        b.copy_from_slice(buf.get(at..at + 8).unwrap_or(&[0; 8]));
                        u64::from_le_bytes(b)
                    };
                    state.on_message(word(0), word(8));
                    buf.drain(..16);
                }
            }
        }
    }
}

/// The supervisor's handle on its watchdog.
pub struct Watchdog {
    process: Mutex<Child>,
    pipe: Mutex<ChildStdin>,
}

impl Watchdog {
    /// Starts the watchdog (this executable again, in a process group of its
    /// own so that terminal signals and group stops do not reach it).
    pub fn start() -> std::io::Result<Watchdog> {
        use std::os::unix::process::CommandExt;
        let mut process = Command::new(std::env::current_exe()?)
            .arg(ARG)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .process_group(0)
            .spawn()?;
        let pipe = process
            .stdin
            .take()
            .ok_or_else(|| std::io::Error::other("no pipe to the watchdog"))?;
        Ok(Watchdog {
            process: Mutex::new(process),
            pipe: Mutex::new(pipe),
        })
    }

    fn send(&self, tag: u64, value: u64) {
        let mut msg = [0u8; 16];
        msg[..8].copy_from_slice(&tag.to_le_bytes());
        msg[8..].copy_from_slice(&value.to_le_bytes());
        if let Ok(mut pipe) = self.pipe.lock() {
            let _ = pipe.write_all(&msg);
        }
    }

    /// Guard this process group: kill it at `kill_at` unless extended.
    pub fn guard(&self, pgid: u32, kill_at: Instant) {
        self.send(GROUP, u64::from(pgid));
        self.extend(kill_at);
    }

    /// Move the deadline (after a beat got through).
    pub fn extend(&self, kill_at: Instant) {
        let left = kill_at.saturating_duration_since(Instant::now()).as_nanos();
        let at = boottime_ns().saturating_add(u64::try_from(left).unwrap_or(u64::MAX));
        self.send(DEADLINE, at);
    }

    /// The child is gone: the watchdog exits without killing anything.
    pub fn disarm(&self) {
        self.send(DISARM, 0);
        if let Ok(mut process) = self.process.lock() {
            let _ = process.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kills_at_the_deadline_unless_extended() {
        let mut s = State::default();
        assert_eq!(s.next(0, false), Next::Wait(None));
        s.on_message(GROUP, 4242);
        s.on_message(DEADLINE, 1_000);
        assert_eq!(s.next(400, false), Next::Wait(Some(600)));
        s.on_message(DEADLINE, 2_000);
        assert_eq!(s.next(1_500, false), Next::Wait(Some(500)));
        assert_eq!(s.next(2_000, false), Next::Kill(4242));
    }

    #[test]
    fn a_vanished_supervisor_means_kill_now_unless_disarmed() {
        let mut s = State::default();
        assert_eq!(s.next(0, true), Next::Exit, "nothing to guard yet");
        s.on_message(GROUP, 77);
        assert_eq!(s.next(0, true), Next::Kill(77));
        s.on_message(DISARM, 0);
        assert_eq!(s.next(0, true), Next::Exit);
        assert_eq!(s.next(u64::MAX, false), Next::Exit);
    }

    #[test]
    fn process_groups_0_and_1_are_never_killed() {
        let mut s = State::default();
        for pgid in [0, 1, u64::MAX] {
            s.on_message(GROUP, pgid);
            assert_eq!(s.next(0, true), Next::Exit, "{pgid}");
        }
    }
}
