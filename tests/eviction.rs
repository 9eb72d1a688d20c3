//! maxmemory: a warning for policies that evict locks, evicted locks
//! counted, and waiter grants that respect OOM.

use crate::support::waiting::{blocked_waiter, wait_for_waiters};
use crate::support::{acquire, config_set, counter, eventually, info, info_field, Options, Server};
use std::time::Duration;

// ---- 5. eviction ----

#[test]
fn evictable_policies_are_warned_about_and_evicted_locks_counted() {
    let server = Server::with(Options::default().config("maxmemory-policy", "allkeys-lru"));
    assert!(server.log().contains("maxmemory-policy is allkeys-lru"));
    let mut c = server.conn();
    config_set(&mut c, "maxmemory-policy", "noeviction");
    config_set(&mut c, "maxmemory-policy", "allkeys-random");
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
    config_set(&mut c, "maxmemory", &limit);
    let blob = "x".repeat(10_000);
    for i in 0..600 {
        let _: () = redis::cmd("SET")
            .arg(format!("fill:{i}"))
            .arg(&blob)
            .query(&mut c)
            .unwrap();
    }
    config_set(&mut c, "maxmemory", "0");
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
    config_set(&mut c, "maxmemory", "1");
    // The key is gone; granting W would create it while over maxmemory.
    let _: i64 = redis::cmd("DEL").arg("k").query(&mut c).unwrap();
    let (reply, pong) = waiter.join().unwrap();
    let err = reply.expect_err("OOM expected");
    assert_eq!(err.code(), Some("OOM"), "{err}");
    assert_eq!(pong, "after");
    config_set(&mut c, "maxmemory", "0");
    assert!(info(&mut c, "k").is_none());
}
