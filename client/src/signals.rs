//! The signals `hblock run` catches, what it does with each, and their names.
//!
//! All of them are blocked in every thread and read by one thread with
//! sigwait, so none can kill the supervisor without it stopping its child
//! and releasing. SIGHUP, SIGUSR1, SIGUSR2 and SIGWINCH are passed to the
//! child and the supervisor keeps running (SIGHUP only with `--on-hup pass`,
//! the default; `--on-hup ignore` drops it and starts the child with SIGHUP
//! ignored); SIGINT, SIGTERM and SIGQUIT are
//! passed on and the supervisor then waits for the child, releases and
//! exits; any other signal that would end a process (SIGALRM, real-time
//! signals, and SIGSEGV and the other fault signals when another process
//! sends them) stops the child with SIGTERM the same way. Job control
//! (SIGSTOP, SIGTSTP) is left alone: a stopped supervisor is the watchdog's
//! case. SIGKILL cannot be caught: the parent-death signal and the watchdog
//! stop the child then.

use std::sync::mpsc::Sender;

/// What the supervisor does with a signal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Pass it to the child; keep running.
    Pass,
    /// Pass it to the child, then wait for the child, release and exit.
    Stop,
    /// Send the child SIGTERM, then as Stop.
    Terminate,
}

const PASS: [i32; 4] = [libc::SIGHUP, libc::SIGUSR1, libc::SIGUSR2, libc::SIGWINCH];
const STOP: [i32; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGQUIT];
/// Signals whose default action ends a process. The fault signals among
/// them are caught only when another process sends them: a real fault in the
/// supervisor still ends it (the kernel ignores the block for those), and the
/// watchdog then kills the child's group.
const TERMINATE: [i32; 15] = [
    libc::SIGABRT,
    libc::SIGBUS,
    libc::SIGFPE,
    libc::SIGILL,
    libc::SIGSEGV,
    libc::SIGSYS,
    libc::SIGTRAP,
    libc::SIGALRM,
    libc::SIGVTALRM,
    libc::SIGPROF,
    libc::SIGIO,
    libc::SIGPWR,
    libc::SIGXCPU,
    libc::SIGXFSZ,
    libc::SIGSTKFLT,
];

pub fn kind(sig: i32) -> Kind {
    if PASS.contains(&sig) {
        Kind::Pass
    } else if STOP.contains(&sig) {
        Kind::Stop
    } else {
        Kind::Terminate
    }
}

/// Every signal the supervisor catches, real-time ones included.
fn caught() -> Vec<i32> {
    let realtime = libc::SIGRTMIN()..=libc::SIGRTMAX();
    PASS.iter()
        .chain(&STOP)
        .chain(&TERMINATE)
        .copied()
        .chain(realtime)
        .collect()
}

/// `SIGTERM` for 15; `SIGRTMIN+3` for real-time signals.
pub fn name(sig: i32) -> String {
    let known = [
        (libc::SIGHUP, "SIGHUP"),
        (libc::SIGINT, "SIGINT"),
        (libc::SIGQUIT, "SIGQUIT"),
        (libc::SIGKILL, "SIGKILL"),
        (libc::SIGABRT, "SIGABRT"),
        (libc::SIGBUS, "SIGBUS"),
        (libc::SIGFPE, "SIGFPE"),
        (libc::SIGILL, "SIGILL"),
        (libc::SIGSEGV, "SIGSEGV"),
        (libc::SIGSYS, "SIGSYS"),
        (libc::SIGTRAP, "SIGTRAP"),
        (libc::SIGUSR1, "SIGUSR1"),
        (libc::SIGUSR2, "SIGUSR2"),
        (libc::SIGALRM, "SIGALRM"),
        (libc::SIGTERM, "SIGTERM"),
        (libc::SIGWINCH, "SIGWINCH"),
        (libc::SIGVTALRM, "SIGVTALRM"),
        (libc::SIGPROF, "SIGPROF"),
        (libc::SIGIO, "SIGIO"),
        (libc::SIGPWR, "SIGPWR"),
        (libc::SIGXCPU, "SIGXCPU"),
        (libc::SIGXFSZ, "SIGXFSZ"),
        (libc::SIGSTKFLT, "SIGSTKFLT"),
    ];
    match known.iter().find(|(n, _)| *n == sig) {
        Some((_, name)) => (*name).to_string(),
        None if sig >= libc::SIGRTMIN() && sig <= libc::SIGRTMAX() => {
            format!("SIGRTMIN+{}", sig - libc::SIGRTMIN())
        }
        None => format!("signal {sig}"),
    }
}

fn caught_set() -> libc::sigset_t {
    // SAFETY: sigemptyset initialises the set; sigaddset only writes to it.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for sig in caught() {
            libc::sigaddset(&mut set, sig);
        }
        set
    }
}

/// Blocks the caught signals in this thread and every thread started after,
/// and delivers them to `deliver` from a thread of their own. Call it before
/// any other thread starts.
pub fn catch<T: Send + 'static>(tx: Sender<T>, deliver: fn(i32) -> T) {
    let set = caught_set();
    // SAFETY: pthread_sigmask on a set built above.
    unsafe {
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
    std::thread::spawn(move || loop {
        let mut sig: libc::c_int = 0;
        // SAFETY: sigwait on a set of blocked signals, writing to a local.
        let rc = unsafe { libc::sigwait(&set, &mut sig) };
        if rc == 0 && tx.send(deliver(sig)).is_err() {
            return;
        }
    });
}

/// In a child between fork and exec: no signal blocked (the child gets the
/// default dispositions back). Async-signal-safe.
pub fn unblock_all_in_child() {
    // SAFETY: sigemptyset and sigprocmask are async-signal-safe.
    unsafe {
        let mut none: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut none);
        libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
    }
}

/// In a child between fork and exec: `sig` ignored (SIG_IGN survives exec).
/// Async-signal-safe.
pub fn ignore_in_child(sig: i32) {
    // SAFETY: sigaction is async-signal-safe; the action is zeroed then
    // given SIG_IGN.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = libc::SIG_IGN;
        libc::sigemptyset(&mut action.sa_mask);
        libc::sigaction(sig, &action, std::ptr::null_mut());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_and_names() {
        assert_eq!(kind(libc::SIGHUP), Kind::Pass);
        assert_eq!(kind(libc::SIGWINCH), Kind::Pass);
        assert_eq!(kind(libc::SIGQUIT), Kind::Stop);
        assert_eq!(kind(libc::SIGALRM), Kind::Terminate);
        assert_eq!(kind(libc::SIGRTMIN() + 1), Kind::Terminate);
        assert_eq!(name(libc::SIGTERM), "SIGTERM");
        assert_eq!(name(libc::SIGRTMIN() + 2), "SIGRTMIN+2");
        let caught = caught();
        assert!(caught.contains(&libc::SIGUSR2) && caught.contains(&libc::SIGRTMAX()));
        assert!(caught.contains(&libc::SIGSEGV) && !caught.contains(&libc::SIGKILL));
        assert!(!caught.contains(&libc::SIGSTOP) && !caught.contains(&libc::SIGTSTP));
    }
}
