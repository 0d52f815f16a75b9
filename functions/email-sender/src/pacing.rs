//! Paces sends to the mailer's maximum rate (SES's default is 14 per second): each send takes
//! the next free slot, spaced `1/rate` apart, and waits for it. Time is tokio's, so tests run
//! on paused time.

use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

/// A send-rate limiter shared by the concurrent records of an instance.
#[derive(Debug)]
pub struct Pacer {
    interval: Duration,
    next: Mutex<Option<Instant>>,
}

impl Pacer {
    /// At most `per_second` sends a second; `per_second` must be positive.
    pub fn new(per_second: f64) -> Self {
        Pacer {
            interval: Duration::from_secs_f64(1.0 / per_second),
            next: Mutex::new(None),
        }
    }

    /// Waits for the next send slot.
    pub async fn acquire(&self) {
        let slot = {
            let mut next = self.next.lock().await;
            let now = Instant::now();
            let slot = next.map_or(now, |n| n.max(now));
            *next = Some(slot + self.interval);
            slot
        };
        tokio::time::sleep_until(slot).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn spaces_sends() {
        let pacer = std::sync::Arc::new(Pacer::new(5.0));
        let start = Instant::now();
        let mut at = Vec::new();
        for _ in 0..6 {
            pacer.acquire().await;
            at.push(start.elapsed());
        }
        assert_eq!(at[0], Duration::ZERO);
        assert_eq!(at[5], Duration::from_secs(1));
        // An idle period does not bank a burst.
        tokio::time::sleep(Duration::from_secs(10)).await;
        let t0 = Instant::now();
        pacer.acquire().await;
        pacer.acquire().await;
        assert_eq!(t0.elapsed(), Duration::from_millis(200));
    }
}
