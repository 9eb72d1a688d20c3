//! --min-replicas, and `hblock run` riding out a cluster master failover.

use super::*;

#[test]
fn min_replicas_waits_for_the_grant_to_be_replicated() {
    let master = Server::start();
    let replica = Server::replica_of(&master);
    let mut r = replica.conn();
    let linked = eventually(Duration::from_secs(10), || {
        let info: String = redis::cmd("INFO").arg("replication").query(&mut r).ok()?;
        info.contains("master_link_status:up").then_some(())
    });
    assert!(linked.is_some(), "replica linked");
    let ok = hblock(
        &master,
        &["acquire", "k", "--owner", "a", "--min-replicas", "1"],
    );
    assert_eq!(
        (code(&ok), stdout(&ok).as_str()),
        (0, "1"),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let mut m = master.conn();
    assert_eq!(
        support::state(&mut m, "k"),
        "held",
        "detached, not released"
    );
    let too_many = hblock(
        &master,
        &[
            "acquire",
            "k2",
            "--owner",
            "b",
            "--min-replicas",
            "2",
            "--replica-timeout",
            "200",
        ],
    );
    assert_eq!(
        code(&too_many),
        3,
        "{}",
        String::from_utf8_lossy(&too_many.stderr)
    );
    assert!(String::from_utf8_lossy(&too_many.stderr).contains("only 1 of 2 replicas"));
    assert_eq!(
        support::state(&mut m, "k2"),
        "free",
        "a grant not replicated enough is released"
    );
    drop(replica);
}

#[test]
fn run_on_a_cluster_rides_out_a_master_failover() {
    let mut cluster = support::cluster::Cluster::start();
    let urls = cluster.urls();
    let dir = tempfile::tempdir().unwrap();
    // A 10 s lease (1 s x 10) outlasts the failover; grace 1 s.
    let terms = ["--interval", "1000", "--misses", "10", "--grace", "1000"];
    let mut sup = Supervisor::start_on(&urls, dir.path(), "a", &terms, SLEEPER);
    let child =
        wait_pid_file(&dir.path().join("a.pid"), Duration::from_secs(10)).expect("child started");
    // Seeds for the one-shot commands: the nodes running at the time (a
    // stopped node's port may belong to another test's server by then).
    let cli = |urls: &[String], args: &[&str]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_hblock"));
        cmd.arg("--cluster");
        for url in urls {
            cmd.arg("--redis").arg(url);
        }
        cmd.args(args).output().unwrap()
    };
    let info = cli(&urls, &["info", "job", "--json"]);
    assert!(
        stdout(&info).contains("\"state\":\"held\""),
        "{}",
        stdout(&info)
    );
    // Thin commands reach keys in every slot.
    for i in 0..10 {
        let out = cli(&urls, &["acquire", &format!("thin:{i}"), "--owner", "t"]);
        let token: i64 = stdout(&out).parse().unwrap_or(0);
        assert_eq!(code(&out), 0);
        assert!(token >= 1, "{}", stdout(&out));
    }

    let master = cluster.master_of("job");
    let killed = Instant::now();
    cluster.nodes[master].stop();
    let recovered = eventually(Duration::from_secs(30), || {
        sup.log()
            .contains(" recovered after ")
            .then_some(Instant::now())
    });
    let recovered = recovered.unwrap_or_else(|| panic!("beats never recovered:\n{}", sup.log()));
    eprintln!(
        "cluster failover under hblock run: beats failed for {:?}",
        recovered.duration_since(killed)
    );
    assert!(sup.log().contains(" failing: "), "{}", sup.log());
    assert!(alive(child), "the child kept running through the failover");
    assert_ne!(cluster.master_of("job"), master, "a replica was promoted");

    sup.signal(libc::SIGTERM);
    assert_eq!(
        sup.wait_exit(Duration::from_secs(10)),
        Some(128 + libc::SIGTERM)
    );
    let info = cli(&cluster.running_urls(), &["info", "job", "--json"]);
    // Released; after an unplanned promotion a lock not held is `held-back`
    // until its own lease (10 s) has passed since the promotion.
    let out = stdout(&info);
    assert!(
        out.contains("\"state\":\"free\"") || out.contains("\"state\":\"held-back\""),
        "released on the new master: {out}"
    );
    assert!(
        stdout(&info).contains("\"token\":1"),
        "the same lease, token 1"
    );
}
