// client/examples/quickstart.rs: work only while this process holds the lease.
use hblock_client::{Client, Error, LeaseOptions};
use std::time::{Duration, Instant};

fn main() -> Result<(), Error> {
    let url = std::env::var("HBLOCK_REDIS_URL").unwrap_or("redis://127.0.0.1:6379".into());
    let client = Client::open(&url)?;
    // Queue (first come, first served) until the lock is ours: WAIT 0.
    let options = LeaseOptions {
        wait: Some(Duration::ZERO),
        ..LeaseOptions::default()
    };
    let owner = format!("worker-{}", std::process::id());
    let Some(lease) = client.acquire("jobs:leader", owner.as_bytes(), &options)? else {
        return Ok(()); // without WAIT: someone else holds it
    };
    println!("{owner} leads with fencing token {}", lease.token());
    for step in 1..=5 {
        // Stop the moment the lease is lost, and never work past the time
        // the server may end it (Redis unreachable: beats fail meanwhile).
        if let Some(why) = lease.lost() {
            eprintln!("lost the lease: {why}");
            return Ok(());
        }
        if Instant::now() >= lease.lease_ends() {
            eprintln!("no beat got through for a whole lease: stopping");
            return Ok(());
        }
        // A fenced write: Redis applies it only while this lease is live
        // (on a cluster the keys need the lock's hash tag).
        match lease.fenced::<()>(("SET", "jobs:last-step", step)) {
            Err(Error::NotHeld(why)) => {
                eprintln!("lost the lease: NOTHELD {why}"); // not written
                return Ok(());
            }
            written => written?,
        }
        println!("step {step} written with token {}", lease.token());
        std::thread::sleep(Duration::from_millis(200));
    }
    lease.release()?; // dropping the lease releases it too
    Ok(())
}
