//! The thin commands (acquire, beat, release, info): replies and exit codes.

use super::*;

#[test]
fn thin_commands_print_replies_and_exit_codes() {
    let server = Server::start();
    let acquired = hblock(&server, &["acquire", "k", "--owner", "a"]);
    assert_eq!((code(&acquired), stdout(&acquired).as_str()), (0, "1"));
    let busy = hblock(&server, &["acquire", "k", "--owner", "b"]);
    assert_eq!((code(&busy), stdout(&busy).as_str()), (1, ""));
    let generated = hblock(&server, &["acquire", "other"]);
    assert_eq!(code(&generated), 0);
    assert!(
        String::from_utf8_lossy(&generated.stderr).contains("owner="),
        "the generated owner is shown"
    );
    let beat = hblock(&server, &["beat", "k", "a", "1"]);
    assert_eq!((code(&beat), stdout(&beat).as_str()), (0, "1"));
    let refused = hblock(&server, &["beat", "k", "b", "1"]);
    assert_eq!(code(&refused), 1);
    assert!(String::from_utf8_lossy(&refused.stderr).contains("NOTHELD"));
    let info = hblock(&server, &["info", "k"]);
    assert_eq!(code(&info), 0);
    assert!(
        stdout(&info).contains("state      held") && stdout(&info).contains("owner      a"),
        "{}",
        stdout(&info)
    );
    let json = hblock(&server, &["info", "k", "--json"]);
    assert_eq!(code(&json), 0);
    let text = stdout(&json);
    assert!(
        text.starts_with(
            "{\"state\":\"held\",\"owner\":\"a\",\"token\":1,\"interval\":1000,\"misses\":3,"
        ),
        "{text}"
    );
    assert!(
        text.ends_with(
            "\"takeovers\":0,\"waiters\":0,\"bound\":0,\"limit\":1,\"holders\":1,\"waiters_list\":[]}"
        ),
        "{text}"
    );
    let released = hblock(&server, &["release", "k", "a", "1"]);
    assert_eq!((code(&released), stdout(&released).as_str()), (0, "1"));
    let again = hblock(&server, &["release", "k", "a", "1"]);
    assert_eq!((code(&again), stdout(&again).as_str()), (1, "0"));
    let missing = hblock(&server, &["info", "nokey"]);
    assert_eq!(code(&missing), 1);
    let waited = hblock(&server, &["acquire", "k", "--owner", "c", "--wait", "100"]);
    assert_eq!(
        (code(&waited), stdout(&waited).as_str()),
        (0, "3"),
        "free: no wait needed (\"other\" got 2: one token sequence per data set)"
    );
    let timed_out = hblock(&server, &["acquire", "k", "--owner", "d", "--wait", "100"]);
    assert_eq!(code(&timed_out), 1);
}

#[test]
fn usage_errors_exit_2_and_an_unreachable_server_3() {
    let server = Server::start();
    assert_eq!(code(&hblock(&server, &["bogus"])), 2, "usage error");
    assert_eq!(
        code(&hblock(&server, &["acquire", "k", "--interval", "0"])),
        2
    );
    let unreachable = Command::new(env!("CARGO_BIN_EXE_hblock"))
        .args(["--redis", "redis://127.0.0.1:1", "info", "k"])
        .output()
        .unwrap();
    assert_eq!(code(&unreachable), 3);
    // A URL that does not parse is fatal (exit 3, "check the URL"), tokens
    // that are not positive are usage errors; the message shows the URL
    // without its password.
    let bad_url = Command::new(env!("CARGO_BIN_EXE_hblock"))
        .args(["--redis", "redis://u:s3cret@:::bad", "info", "k"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&bad_url.stderr);
    assert_eq!(code(&bad_url), 3, "{stderr}");
    assert!(
        stderr.contains("redis://u:***@:::bad")
            && stderr.trim_end().ends_with(": check the URL")
            && !stderr.contains("s3cret"),
        "{stderr}"
    );
    for token in ["0", "-5"] {
        let beat = hblock(&server, &["beat", "k", "o", token]);
        assert_eq!(code(&beat), 2, "beat with token {token}");
    }
}

#[test]
fn watch_prints_one_json_line_per_change_of_holder() {
    use std::io::{BufRead, BufReader};
    let server = Server::start();
    let mut child = Command::new(env!("CARGO_BIN_EXE_hblock"))
        .args(["--redis", &server.url(), "watch", "w", "--json"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("hblock watch");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut next = || lines.next().and_then(Result::ok).unwrap_or_default();
    assert_eq!(next(), "null", "no such lock yet");
    let t1 = hblock(
        &server,
        &["acquire", "w", "--owner", "a", "--interval", "60000"],
    );
    let first = next();
    assert!(
        first.starts_with("{\"state\":\"held\",\"owner\":\"a\",\"token\":"),
        "{first}"
    );
    assert_eq!(stdout(&t1), "1");
    hblock(&server, &["release", "w", "a", "1"]);
    assert!(next().starts_with("{\"state\":\"free\""));
    hblock(
        &server,
        &["acquire", "w", "--owner", "b", "--interval", "60000"],
    );
    assert!(next().contains("\"owner\":\"b\",\"token\":2"));
    let _ = child.kill();
    let _ = child.wait();
}
