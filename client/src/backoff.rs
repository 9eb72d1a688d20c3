//! Retry delays after a connection error: 10 ms, doubling, never more than
//! half the beat interval (so a lease of `interval * misses` sees at least
//! two retries per interval while Redis is away).

use std::time::Duration;

#[derive(Debug)]
pub struct Backoff {
    next: Duration,
    max: Duration,
}

const FIRST: Duration = Duration::from_millis(10);

impl Backoff {
    pub fn new(interval: Duration) -> Backoff {
        let max = (interval / 2).max(Duration::from_millis(1));
        Backoff {
            next: FIRST.min(max),
            max,
        }
    }

    /// The delay before the next attempt.
    pub fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = (self.next * 2).min(self.max);
        delay
    }

    /// An attempt got through: start from the shortest delay again.
    pub fn reset(&mut self) {
        self.next = FIRST.min(self.max);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_half_the_interval_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(100));
        let delays: Vec<u128> = (0..5).map(|_| b.next_delay().as_millis()).collect();
        assert_eq!(delays, [10, 20, 40, 50, 50]);
        b.reset();
        assert_eq!(b.next_delay().as_millis(), 10);
        let mut tiny = Backoff::new(Duration::from_millis(1));
        assert_eq!(tiny.next_delay(), Duration::from_millis(1));
    }
}
