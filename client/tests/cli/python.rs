//! The Python example (two instances fail over) and redis-py on a cluster.

use super::*;

#[test]
fn the_python_example_fails_over_between_two_instances() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/python/leader.py");
    let start = |name: &str| {
        let out = dir.path().join(format!("{name}.out"));
        let child = Command::new(python())
            .arg(&example)
            .args([
                "--redis",
                &server.url(),
                "--key",
                "py",
                "--owner",
                name,
                "--interval",
                "100",
                "--misses",
                "2",
            ])
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python");
        (child, out)
    };
    let shows = |path: &Path, text: &str, secs: u64| {
        eventually(Duration::from_secs(secs), || {
            let out = std::fs::read_to_string(path).unwrap_or_default();
            out.contains(text).then_some(())
        })
        .is_some()
    };
    let (mut first, first_out) = start("first");
    assert!(shows(&first_out, "acquired py token=1", 10));
    let (mut second, second_out) = start("second");
    let mut c = server.conn();
    let queued = eventually(Duration::from_secs(10), || {
        (support::info_int(&mut c, "py", "waiters") == 1).then_some(())
    });
    assert!(queued.is_some(), "second waits");
    assert!(!shows(&second_out, "working", 0), "only one instance works");
    first.kill().unwrap(); // SIGKILL: a crash, no release
    let _ = first.wait();
    let crashed = Instant::now();
    assert!(shows(&second_out, "acquired py token=2", 5));
    eprintln!(
        "python: crash to takeover {:?} (lease 200 ms)",
        crashed.elapsed()
    );
    assert!(shows(&second_out, "working token=2", 5));
    // SIGTERM: the instance releases and exits 0.
    // SAFETY: kill(2) on a process this test started.
    unsafe {
        libc::kill(second.id() as i32, libc::SIGTERM);
    }
    let status =
        eventually(Duration::from_secs(5), || second.try_wait().ok().flatten()).expect("exit");
    assert_eq!(status.code(), Some(0));
    assert!(shows(&second_out, "released py token=2\n", 0));
    assert_eq!(support::state(&mut c, "py"), "free");
}

#[test]
fn redis_py_cluster_client_routes_hblock_commands() {
    let cluster = support::cluster::Cluster::start();
    let script = r#"
import sys
from redis.cluster import RedisCluster
rc = RedisCluster(host="127.0.0.1", port=int(sys.argv[1]), protocol=2)
for i in range(30):
    key = f"py:{i}"
    token = rc.execute_command("HBLOCK.ACQUIRE", key, "me", "INTERVAL", 60000)
    assert token >= 1, key
    assert rc.execute_command("HBLOCK.BEAT", key, "me", token) == 1, key
    info = rc.execute_command("HBLOCK.INFO", key)
    assert info[1] == b"held" and info[3] == b"me", info
    assert rc.execute_command("HBLOCK.RELEASE", key, "me", token) == 1, key
print("redis-py RedisCluster: 30 locks ok")
"#;
    let out = Command::new(python())
        .args(["-c", script, &cluster.nodes[0].port.to_string()])
        .output()
        .expect("python");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("30 locks ok"));
}
