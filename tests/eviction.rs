//! maxmemory: a warning for policies that evict locks, evicted locks
//! counted, and waiter grants that respect OOM.

use crate::support::waiting::{blocked_waiter, wait_for_waiters};
use crate::support::{acquire, counter, eventually, info, info_field, Options, Server};
use std::time::Duration;

// ---- 5. eviction ----

#[test]
fn evictable_policies_are_warned_about_and_evicted_locks_counted() {
    let server = Server::with(Options::default().config("maxmemory-policy", "allkeys-lru"));
    assert!(server.log().contains("maxmemory-policy is allkeys-lru"));
    let mut c = server.conn();
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory-policy")
        .arg("noeviction")
        .query(&mut c)
        .unwrap();
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory-policy")
        .arg("allkeys-random")
        .query(&mut c)
        .unwrap();
    assert!(eventually(Duration::from_secs(2), || server
        .log()
        .contains("maxmemory-policy is allkeys-random")
        .then_some(()))
    .is_some());

    let locks = 300;
    for i in 0..locks {
        acquire(&mut c, &format!("ev:{i}"), "o", &["INTERVAL", "600000"]);
    }
    let used: i64 = info_field(&mut c, "memory", "used_memory")
        .unwrap()
        .parse()
        .unwrap();
    let limit = (used + 2_000_000).to_string();
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg(&limit)
        .query(&mut c)
        .unwrap();
    let blob = "x".repeat(10_000);
    for i in 0..600 {
        let _: () = redis::cmd("SET")
            .arg(format!("fill:{i}"))
            .arg(&blob)
            .query(&mut c)
            .unwrap();
    }
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg(0)
        .query(&mut c)
        .unwrap();
    let left = (0..locks)
        .filter(|i| info(&mut c, &format!("ev:{i}")).is_some())
        .count() as u64;
    assert!(left < locks, "nothing was evicted");
    assert_eq!(counter(&mut c, "evicted"), locks - left);
}

#[test]
fn a_waiter_grant_that_would_create_a_key_over_maxmemory_gets_oom() {
    let server = Server::with(Options::default().config("maxmemory-policy", "noeviction"));
    let mut c = server.conn();
    acquire(&mut c, "k", "A", &["INTERVAL", "60000"]);
    let (_, waiter) = blocked_waiter(&server, "k", "W");
    wait_for_waiters(&mut c, 1);
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg(1)
        .query(&mut c)
        .unwrap();
    // The key is gone; granting W would create it while over maxmemory.
    let _: i64 = redis::cmd("DEL").arg("k").query(&mut c).unwrap();
    let (reply, pong) = waiter.join().unwrap();
    let err = reply.expect_err("OOM expected");
    assert_eq!(err.code(), Some("OOM"), "{err}");
    assert_eq!(pong, "after");
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg(0)
        .query(&mut c)
        .unwrap();
    assert!(info(&mut c, "k").is_none());
}
