//! Hostile input: 100,000 random calls of every HBLOCK command (random arity,
//! random bytes, extreme and malformed integers, huge owners, other types'
//! keys) from several connections. The server must stay up, every reply must
//! be a value or a documented error, and a lock nobody touched must not change.

use crate::support::raw::{encode, read_reply, Reply};
use crate::support::rng::Rng;
use crate::support::{acquire, digest_value, Server};
use std::io::{BufReader, Write};
use std::net::TcpStream;

const COMMANDS: [&[u8]; 7] = [
    b"HBLOCK.ACQUIRE",
    b"hblock.acquire",
    b"HBLOCK.BEAT",
    b"HBLOCK.RELEASE",
    b"hBlOcK.InFo",
    b"HBLOCK.INFO",
    b"HBLOCK.APPLY",
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
const OPTIONS: [&[u8]; 7] = [
    b"INTERVAL",
    b"misses",
    b"Wait",
    b"WAIT",
    b"BOGUS",
    b"",
    b"INTERVAL\x00",
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
    const PREFIXES: [&str; 9] = [
        "ERR wrong number of arguments",
        "ERR syntax error",
        "ERR INTERVAL must be",
        "ERR MISSES must be",
        "ERR WAIT must be",
        "ERR token must be",
        "ERR owner must be",
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
