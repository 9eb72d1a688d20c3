//! `hblock run --on-hup`: `pass` (the default) gives the child SIGHUP, and a
//! child that does not handle it dies of it; `ignore` keeps the work going.

use super::*;

/// Writes its pid, then a tick line every 50 ms (a shell loop, so it has
/// SIGHUP's default action unless started with it ignored).
const TICKING: &str =
    "echo $$ > \"$DIR/$NAME.pid\"; while :; do date +%s%N >> \"$DIR/$NAME.ticks\"; sleep 0.05; done";

fn ticks(dir: &Path, name: &str) -> usize {
    std::fs::read_to_string(dir.join(format!("{name}.ticks")))
        .unwrap_or_default()
        .lines()
        .count()
}

/// `hblock run --owner NAME ARGS -- sh -c COMMAND` as the leader of a
/// process group of its own, as a shell's job is, so the test can signal
/// that group (a terminal's hangup goes to the foreground job's group).
fn start_job(server: &Server, dir: &Path, name: &str, args: &[&str], command: &str) -> Supervisor {
    use std::os::unix::process::CommandExt;
    let log = dir.join(format!("{name}.stderr"));
    let child = Command::new(env!("CARGO_BIN_EXE_hblock"))
        .arg("--redis")
        .arg(server.url())
        .args(["run", default_key(), "--owner", name])
        .args(args)
        .args(["--", "sh", "-c", command])
        .env("DIR", dir)
        .env("NAME", name)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log file"))
        .process_group(0)
        .spawn()
        .expect("start hblock run");
    Supervisor { child, log }
}

/// Whether `pid` has `sig` ignored (/proc's SigIgn mask).
fn ignores(pid: i32, sig: i32) -> bool {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("SigIgn:"))
        .and_then(|mask| u64::from_str_radix(mask.trim(), 16).ok())
        .is_some_and(|mask| mask & (1u64 << (sig - 1)) != 0)
}

fn kill(pid: i32, sig: i32) {
    // SAFETY: kill(2) on a process (or group) this test started.
    unsafe {
        libc::kill(pid, sig);
    }
}

#[test]
fn on_hup_ignore_keeps_the_child_running_and_the_lease_held() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let mut sup = start_job(&server, dir.path(), "a", &["--on-hup", "ignore"], TICKING);
    let child = wait_pid_file(&dir.path().join("a.pid"), Duration::from_secs(5)).expect("child");
    assert!(
        ignores(child, libc::SIGHUP),
        "the child starts with SIGHUP ignored"
    );
    let mut c = server.conn();
    let token = support::info_int(&mut c, default_key(), "token");

    // To the supervisor, then (once it has seen that one: signals of one
    // kind do not queue) to its whole group, the job's group.
    let ignored = |n: usize| {
        eventually(Duration::from_secs(5), || {
            (sup.log()
                .matches("SIGHUP: ignored (--on-hup ignore)")
                .count()
                == n)
                .then_some(())
        })
    };
    sup.signal(libc::SIGHUP);
    assert!(ignored(1).is_some(), "{}", sup.log());
    kill(-sup.pid(), libc::SIGHUP);
    assert!(ignored(2).is_some(), "{}", sup.log());
    // And to the child's own group, which no supervisor shields.
    kill(-child, libc::SIGHUP);
    // The child goes on ticking after all three.
    let before = ticks(dir.path(), "a");
    let more = eventually(Duration::from_secs(5), || {
        (ticks(dir.path(), "a") >= before + 3).then_some(())
    });
    assert!(more.is_some(), "the child stopped ticking\n{}", sup.log());
    assert!(alive(child));
    assert_eq!(
        sup.child.try_wait().ok().flatten(),
        None,
        "the supervisor runs"
    );
    assert_eq!(support::state(&mut c, default_key()), "held");
    assert_eq!(
        support::info_int(&mut c, default_key(), "token"),
        token,
        "the same lease"
    );
    assert!(!sup.log().contains("passed to"), "{}", sup.log());
    sup.signal(libc::SIGTERM);
    assert_eq!(
        sup.wait_exit(Duration::from_secs(5)),
        Some(128 + libc::SIGTERM),
        "{}",
        sup.log()
    );
    assert_eq!(support::state(&mut c, default_key()), "free");
}

#[test]
fn by_default_sighup_is_passed_on_and_a_child_without_a_handler_dies_of_it() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let mut sup = start_job(&server, dir.path(), "a", &[], TICKING);
    let child = wait_pid_file(&dir.path().join("a.pid"), Duration::from_secs(5)).expect("child");
    assert!(!ignores(child, libc::SIGHUP));
    sup.signal(libc::SIGHUP);
    assert_eq!(
        sup.wait_exit(Duration::from_secs(5)),
        Some(128 + libc::SIGHUP),
        "the child's status: it died of SIGHUP\n{}",
        sup.log()
    );
    let log = sup.log();
    assert!(log.contains("SIGHUP: passed to"), "{log}");
    assert!(log.contains("exited with 129"), "{log}");
    assert!(log.contains("released job token=1"), "{log}");
    let mut c = server.conn();
    assert_eq!(support::state(&mut c, default_key()), "free");

    // A child that handles SIGHUP keeps running: the supervisor survives it.
    let handles = format!("trap 'echo hup >> \"$DIR/$NAME.hups\"' HUP; {TICKING}");
    let mut sup = start_job(&server, dir.path(), "b", &[], &handles);
    wait_pid_file(&dir.path().join("b.pid"), Duration::from_secs(5)).expect("child");
    sup.signal(libc::SIGHUP);
    let handled = eventually(Duration::from_secs(5), || {
        std::fs::read_to_string(dir.path().join("b.hups"))
            .ok()
            .filter(|s| s.ends_with('\n'))
    });
    assert_eq!(handled.as_deref(), Some("hup\n"), "{}", sup.log());
    assert_eq!(
        sup.child.try_wait().ok().flatten(),
        None,
        "the supervisor runs"
    );
    assert_eq!(support::state(&mut c, default_key()), "held");
}

#[test]
fn an_unknown_on_hup_value_is_a_usage_error() {
    let server = Server::start();
    let out = hblock(&server, &["run", "job", "--on-hup", "stop", "--", "true"]);
    assert_eq!(code(&out), 2, "{}", String::from_utf8_lossy(&out.stderr));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("pass") && err.contains("ignore"), "{err}");
}
