//! Hostile input: 100,000 random calls of every HBLOCK command (random arity,
//! random bytes, extreme and malformed integers, huge owners, other types'
//! keys) from several connections. The server must stay up, every reply must
//! be a value or a documented error, and a lock nobody touched must not change.

use crate::support::raw::{encode, read_reply, Reply};
use crate::support::rng::Rng;
use crate::support::{acquire, digest_value, Server};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;

const COMMANDS: [&[u8]; 9] = [
    b"HBLOCK.ACQUIRE",
    b"hblock.acquire",
    b"HBLOCK.BEAT",
    b"HBLOCK.RELEASE",
    b"hBlOcK.InFo",
    b"HBLOCK.INFO",
    b"HBLOCK.APPLY",
    b"HBLOCK.LIMIT",
    b"HBLOCK.HOLDERS",
];
const KEYS: [&[u8]; 6] = [
    b"fz:a",
    b"fz:b",
    b"fz:c",
    b"fz:str",
    b"fz:list",
    b"fz:\x00\xff",
];
const NUMBERS: [&[u8]; 16] = [
    b"1",
    b"2",
    b"3",
    b"0",
    b"-1",
    b"9223372036854775807",
    b"9223372036854775808",
    b"-9223372036854775808",
    b"18446744073709551616",
    b"1e3",
    b" 1",
    b"+1",
    b"01",
    b"",
    b"86400001",
    b"10001",
];
const OPTIONS: [&[u8]; 9] = [
    b"INTERVAL",
    b"misses",
    b"Wait",
    b"WAIT",
    b"BOGUS",
    b"",
    b"INTERVAL\x00",
    b"LIMIT",
    b"limit",
];

fn random_arg(rng: &mut Rng) -> Vec<u8> {
    match rng.below(6) {
        0 => rng.pick(&KEYS).to_vec(),
        1 => rng.pick(&NUMBERS).to_vec(),
        2 => rng.pick(&OPTIONS).to_vec(),
        3 => {
            let len = [0, 1, 17, 1024, 1025, 70_000][rng.below(6) as usize];
            rng.bytes(len)
        }
        4 => (rng.next_u64() as i64).to_string().into_bytes(),
        _ => {
            let len = rng.below(40) as usize;
            rng.bytes(len)
        }
    }
}

fn random_call(rng: &mut Rng) -> Vec<Vec<u8>> {
    let mut call = vec![rng.pick(&COMMANDS).to_vec()];
    let arity = rng.below(9);
    for i in 0..arity {
        // Mostly well-shaped: a key first, then owners, tokens and options.
        let arg = match (i, rng.below(4)) {
            (0, 0..=2) => rng.pick(&KEYS).to_vec(),
            (_, 0) => rng.pick(&OPTIONS).to_vec(),
            _ => random_arg(rng),
        };
        call.push(arg);
    }
    // WAIT 0 (or a long WAIT) would block this connection for good: keep
    // every valid WAIT short, which still exercises the blocking path.
    for i in 1..call.len() {
        if call[i].eq_ignore_ascii_case(b"WAIT") {
            if let Some(v) = call.get_mut(i + 1) {
                if crate::support::parse_plain_int(v).is_some_and(|n| !(1..=20).contains(&n)) {
                    *v = b"5".to_vec();
                }
            }
        }
    }
    call
}

/// The documented errors; anything else is a bug.
fn documented(error: &str) -> bool {
    const PREFIXES: [&str; 10] = [
        "ERR wrong number of arguments",
        "ERR syntax error",
        "ERR INTERVAL must be",
        "ERR MISSES must be",
        "ERR WAIT must be",
        "ERR token must be",
        "ERR owner must be",
        // "must be an integer from 1 to 1000", "n does not match the lock's limit m"
        "ERR LIMIT ",
        "ERR HBLOCK.APPLY is internal",
        "NOTHELD ",
    ];
    error.starts_with("WRONGTYPE ") || PREFIXES.iter().any(|p| error.starts_with(p))
}

fn fuzz_connection(port: u16, seed: u64, calls: usize) -> usize {
    let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let mut writer = stream.try_clone().expect("clone");
    let mut reader = BufReader::new(stream);
    let mut rng = Rng::new(seed);
    let mut errors = 0;
    let mut done = 0;
    while done < calls {
        let batch: Vec<Vec<Vec<u8>>> = (0..100.min(calls - done))
            .map(|_| random_call(&mut rng))
            .collect();
        let mut out = Vec::new();
        for call in &batch {
            encode(call, &mut out);
        }
        writer.write_all(&out).expect("write");
        for call in &batch {
            if let Reply::Error(e) = read_reply(&mut reader) {
                let shown: Vec<String> = call
                    .iter()
                    .take(6)
                    .map(|a| String::from_utf8_lossy(&a[..a.len().min(40)]).into_owned())
                    .collect();
                assert!(
                    documented(&e),
                    "seed {seed}: undocumented error {e:?} for {shown:?}"
                );
                errors += 1;
            }
        }
        done += batch.len();
    }
    errors
}

#[test]
fn a_hundred_thousand_random_calls_change_nothing_they_should_not() {
    let server = Server::start();
    let mut c = server.conn();
    assert_eq!(
        acquire(&mut c, "untouched", "keeper", &["INTERVAL", "86400000"]),
        Some(1)
    );
    let _: () = redis::cmd("SET")
        .arg("fz:str")
        .arg("text")
        .query(&mut c)
        .unwrap();
    let _: i64 = redis::cmd("RPUSH")
        .arg("fz:list")
        .arg("x")
        .query(&mut c)
        .unwrap();
    let before = digest_value(&mut c, "untouched");

    let per_connection = 25_000;
    let handles: Vec<_> = (0..4u64)
        .map(|i| {
            let port = server.port;
            std::thread::spawn(move || fuzz_connection(port, 0x5eed_0000 + i, per_connection))
        })
        .collect();
    let errors: usize = handles.into_iter().map(|h| h.join().expect("fuzzer")).sum();
    eprintln!("fuzz: 100000 calls, {errors} documented errors");
    assert!(
        errors > 10_000,
        "the fuzzer mostly sends bad input: {errors}"
    );

    let pong: String = redis::cmd("PING").query(&mut c).unwrap();
    assert_eq!(pong, "PONG");
    assert_eq!(
        digest_value(&mut c, "untouched"),
        before,
        "a lock the fuzzer did not touch changed"
    );
    let text: String = redis::cmd("GET").arg("fz:str").query(&mut c).unwrap();
    assert_eq!(text, "text", "other types are never overwritten");
}

// ---- FENCED: nested, self-referencing and huge calls ----
//
// What found the nested-FENCED crash: Redis asks FENCED for its keys before
// running it (COMMAND GETKEYS, ACL key patterns, cluster routing), and that
// lookup used to recurse once per nesting level; through another module's
// command (tests/fixtures/wrapkeys.c, loaded here) both the lookup and the
// execution could. Each call here goes to a plain server or a one-node
// cluster, as the admin or as a user restricted to `~{fz}:*`, and half of
// them inside COMMAND GETKEYS[ANDFLAGS]. Any reply is fine; the server must
// answer every call, PING afterwards, and log no crash.

/// The keys of the nested calls: the restricted user may use the first
/// three (`~{fz}:*`, one slot), not the last (another slot, too).
const FENCED_KEYS: [&str; 4] = ["{fz}:lock", "{fz}:a", "{fz}:b", "other"];

/// `name` with each letter's case chosen at random.
fn random_case(rng: &mut Rng, name: &str) -> String {
    name.chars()
        .map(|ch| {
            if rng.below(2) == 0 {
                ch.to_ascii_lowercase()
            } else {
                ch.to_ascii_uppercase()
            }
        })
        .collect()
}

/// A nesting depth up to 10,000, mostly small.
fn random_depth(rng: &mut Rng) -> usize {
    match rng.below(10) {
        0 => 5_000 + rng.below(5_001) as usize,
        1..=2 => rng.below(5_000) as usize + 1,
        _ => rng.below(20) as usize + 1,
    }
}

/// One wrapped command for the innermost level (the lock itself is never
/// written: if the HBLOCK.RELEASE `release` names right under FENCED ever
/// ran, the lock would be free).
fn innermost(rng: &mut Rng, token: &str, release: &str, out: &mut Vec<String>) {
    let key = |rng: &mut Rng| FENCED_KEYS[1 + rng.below(3) as usize].to_string();
    let cmd: Vec<String> = match rng.below(9) {
        0 => vec!["SET".into(), key(rng), "v".into()],
        1 => vec!["GET".into(), key(rng)],
        2 => vec!["DEL".into(), key(rng), key(rng)],
        3 => vec!["MSET".into(), key(rng), "1".into(), key(rng), "2".into()],
        4 => vec!["PUBLISH".into(), "ch".into(), "m".into()],
        5 => vec!["SORT".into(), key(rng), "STORE".into(), key(rng)],
        6 => vec!["EVAL".into(), "return 1".into(), "0".into()],
        7 => vec![
            random_case(rng, release),
            FENCED_KEYS[0].into(),
            "o".into(),
            token.into(),
        ],
        _ => vec![String::from_utf8_lossy(&rng.bytes(5)).into_owned()],
    };
    out.extend(cmd);
}

/// One level of a nested call: 0 FENCED on the lock, 1 WRAPKEYS.RUN of
/// the test module tests/fixtures/wrapkeys.c, 2 COMMAND GETKEYS, 3 a FENCED
/// whose every argument is its own name, 4 FENCED on a key the restricted
/// user may not use (and no lock).
fn push_level(rng: &mut Rng, kind: u64, token: &str, call: &mut Vec<String>) {
    match kind {
        0 | 4 => {
            let lock = if kind == 4 { "other" } else { "{fz}:lock" };
            call.push(random_case(rng, "hblock.fenced"));
            call.extend([lock.to_string(), "o".to_string(), token.to_string()]);
        }
        1 => call.push(random_case(rng, "wrapkeys.run")),
        2 => call.extend(["COMMAND".to_string(), "GETKEYS".to_string()]),
        _ => {
            let name = random_case(rng, "hblock.fenced");
            call.extend(std::iter::repeat_n(name, 4));
        }
    }
}

/// A nested call: a repeated pattern of levels (FENCED; FENCED through
/// WRAPKEYS.RUN once or twice; FENCED through COMMAND GETKEYS; or levels at
/// random), each level now and then replaced by a random one,
/// down to one wrapped command. Patterns, because what recursed were long
/// runs of the same shape.
fn nested_call(rng: &mut Rng, token: &str) -> Vec<String> {
    // Not WRAPKEYS.RUN alone: the test module recurses through itself
    // without limit (as a naive module may); that is not hblock's to bound.
    const PATTERNS: [&[u64]; 5] = [&[0], &[0, 1], &[0, 2], &[0, 1, 1], &[]];
    let pattern = PATTERNS[rng.below(PATTERNS.len() as u64) as usize];
    let noise = [0, 100, 10][rng.below(3) as usize];
    let depth = random_depth(rng);
    let mut call = Vec::with_capacity(depth * 5 + 8);
    let mut last = 0;
    for level in 0..depth {
        let kind = match pattern.get(level % pattern.len().max(1)) {
            Some(&kind) if noise == 0 || rng.below(noise) != 0 => kind,
            _ => rng.below(5),
        };
        push_level(rng, kind, token, &mut call);
        last = kind;
    }
    // Right under FENCED, HBLOCK.RELEASE must be refused; right under
    // WRAPKEYS.RUN it is that module's call to make (it runs), so there the
    // innermost HBLOCK command only reads.
    let release = if last == 1 {
        "hblock.info"
    } else {
        "hblock.release"
    };
    innermost(rng, token, release, &mut call);
    call
}

/// A FENCED call with about 100,000 arguments.
fn huge_call(rng: &mut Rng, token: &str) -> Vec<String> {
    let n = 90_000 + rng.below(20_001) as usize;
    let mut call: Vec<String> = ["HBLOCK.FENCED", "{fz}:lock", "o", token]
        .map(String::from)
        .to_vec();
    match rng.below(4) {
        0 => {
            call.push("MSET".into());
            for i in 0..n / 2 {
                call.extend([format!("{{fz}}:k{}", i % 64), "v".into()]);
            }
        }
        1 => {
            call.push("DEL".into());
            call.extend((0..n).map(|i| format!("{{fz}}:k{}", i % 64)));
        }
        2 => call.extend(std::iter::repeat_n(random_case(rng, "hblock.fenced"), n)),
        _ => {
            call.push("GET".into());
            call.extend((0..n).map(|i| i.to_string()));
        }
    }
    call
}

/// One raw connection: sends a call, reads its whole reply; a closed
/// connection (the server died) fails with the seed and call number.
struct Conn {
    writer: TcpStream,
    reader: BufReader<TcpStream>,
    name: &'static str,
}

impl Conn {
    fn open(port: u16, auth: Option<(&str, &str)>, name: &'static str) -> Conn {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream
            .set_read_timeout(Some(std::time::Duration::from_secs(30)))
            .expect("read timeout");
        let mut conn = Conn {
            writer: stream.try_clone().expect("clone"),
            reader: BufReader::new(stream),
            name,
        };
        if let Some((user, pass)) = auth {
            let reply = conn.call(&["AUTH".to_string(), user.into(), pass.into()], "auth");
            assert!(matches!(reply, Reply::Value), "AUTH {user}: {reply:?}");
        }
        conn
    }

    fn call(&mut self, args: &[String], what: &str) -> Reply {
        let mut out = Vec::new();
        encode(args, &mut out);
        self.writer.write_all(&out).unwrap_or_else(|e| {
            panic!(
                "{}: {what}: the server took no more input ({e}): crashed?",
                self.name
            )
        });
        let open = self.reader.fill_buf().is_ok_and(|b| !b.is_empty());
        assert!(
            open,
            "{}: {what}: no reply, the connection closed: crashed?",
            self.name
        );
        read_reply(&mut self.reader)
    }
}

/// The log of a server that crashed says so (Redis and Valkey alike).
fn crashed_in_log(log: &str) -> bool {
    [
        "crashed by signal",
        "BUG REPORT",
        "ASSERTION FAILED",
        "Guru Meditation",
    ]
    .iter()
    .any(|sign| log.contains(sign))
}

#[test]
fn nested_self_referencing_and_huge_fenced_calls_never_crash() {
    // Both load the other module too: nesting through it must be bounded.
    let (_dir, wrapkeys) = crate::fenced::build_wrapkeys();
    let options =
        crate::support::Options::default().config("loadmodule", wrapkeys.to_str().unwrap());
    let plain = Server::with(options.clone());
    let cluster = crate::support::cluster::single_node(options);
    let mut tokens = Vec::new();
    for server in [&plain, &cluster] {
        let mut c = server.conn();
        let token = acquire(&mut c, "{fz}:lock", "o", &["INTERVAL", "600000"]).expect("granted");
        tokens.push(token.to_string());
        let _: () = redis::cmd("ACL")
            .arg(&[
                "SETUSER",
                "fz",
                "on",
                ">pw",
                "~{fz}:*",
                "resetchannels",
                "+@all",
            ])
            .query(&mut c)
            .unwrap();
    }
    let mut conns = [
        (Conn::open(plain.port, None, "plain/admin"), 0),
        (Conn::open(plain.port, Some(("fz", "pw")), "plain/fz"), 0),
        (Conn::open(cluster.port, None, "cluster/admin"), 1),
        (
            Conn::open(cluster.port, Some(("fz", "pw")), "cluster/fz"),
            1,
        ),
    ];
    let seed = 0xFE9C_ED00_u64;
    let mut rng = Rng::new(seed);
    // Bounded in count and in time (a slow machine runs fewer calls).
    let started = std::time::Instant::now();
    let (mut calls, mut args_sent) = (0usize, 0usize);
    while calls < 2_000 && started.elapsed() < std::time::Duration::from_secs(15) {
        let (conn, server) = &mut conns[rng.below(4) as usize];
        let token = &tokens[*server];
        let mut call = if rng.below(40) == 0 {
            huge_call(&mut rng, token)
        } else {
            nested_call(&mut rng, token)
        };
        let prefix: &[&str] = match rng.below(4) {
            0 => &["COMMAND", "GETKEYS"],
            1 => &["COMMAND", "GETKEYSANDFLAGS"],
            _ => &[],
        };
        call.splice(0..0, prefix.iter().map(|p| p.to_string()));
        let what = format!(
            "seed {seed:#x} call {calls} ({} args: {:?} ...)",
            call.len(),
            &call[..call.len().min(6)]
        );
        conn.call(&call, &what);
        calls += 1;
        args_sent += call.len();
    }
    eprintln!(
        "fuzz fenced: {calls} calls, {args_sent} arguments in {:?}",
        started.elapsed()
    );
    assert!(calls >= 20, "too few calls to mean anything: {calls}");
    for server in [&plain, &cluster] {
        let mut c = server.conn();
        let pong: String = redis::cmd("PING").query(&mut c).unwrap();
        assert_eq!(pong, "PONG");
        let log = server.log();
        assert!(!crashed_in_log(&log), "a crash in the log:\n{log}");
        assert_eq!(
            crate::support::state(&mut c, "{fz}:lock"),
            "held",
            "no wrapped HBLOCK.RELEASE ran"
        );
    }
}
