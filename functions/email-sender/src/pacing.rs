//! Paces sends to the mailer's maximum rate, counted in **recipients**, and never starts a send
//! the invocation has no time left to finish.
//!
//! SES counts its sending quotas (the maximum send rate and the daily quota) in recipients,
//! not messages: one request to 50 addresses uses 50 of the per-second rate.
//! <https://docs.aws.amazon.com/ses/latest/dg/quotas.html> ("Quotas are based on the number of
//! recipients, rather than on the number of messages.")
//!
//! Each send takes the next free slot and moves the following one on by `recipients / rate`:
//! it goes out at its slot, and the sends after it pay for its recipients. So a request to many
//! recipients never waits longer than one slot, however low the rate, and the average rate
//! over any stretch stays at or below the configured one. An idle period does not bank a burst.
//!
//! A send whose slot falls after the caller's cutoff (the invocation's deadline less the time a
//! send and its bookkeeping need) is not started and takes no slot: the caller reports its
//! record as a batch item failure, and it is retried by a later invocation, instead of the
//! whole batch timing out while it waits.
//!
//! Time is tokio's, so tests run on paused time.

use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

/// A send was not started: its slot comes after the cutoff.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("no send slot before the invocation's deadline (the next is {wait:?} away)")]
pub struct Deferred {
    /// How far away the next free slot is.
    pub wait: Duration,
}

/// A send-rate limiter shared by the concurrent records of an instance.
#[derive(Debug)]
pub struct Pacer {
    /// The time one recipient uses: `1 / rate`.
    per_recipient: Duration,
    /// The next free slot; `None` before the first send.
    next: Mutex<Option<Instant>>,
}

impl Pacer {
    /// At most `recipients_per_second` recipients a second; it must be positive.
    pub fn new(recipients_per_second: f64) -> Self {
        Pacer {
            per_recipient: Duration::from_secs_f64(1.0 / recipients_per_second),
            next: Mutex::new(None),
        }
    }

    /// Waits for the slot of a message to `recipients` recipients, if that slot starts by
    /// `cutoff`; otherwise returns [`Deferred`] at once, without taking a slot.
    pub async fn acquire(&self, recipients: usize, cutoff: Instant) -> Result<(), Deferred> {
        let slot = {
            let mut next = self.next.lock().await;
            let now = Instant::now();
            let slot = next.map_or(now, |n| n.max(now));
            if slot > cutoff {
                return Err(Deferred { wait: slot - now });
            }
            let recipients = u32::try_from(recipients.max(1)).unwrap_or(u32::MAX);
            *next = Some(slot + self.per_recipient.saturating_mul(recipients));
            slot
        };
        // tokio's timer counts whole milliseconds and rounds a deadline up to the next one,
        // so a slot a few microseconds away (every slot at a high rate) would cost up to a
        // millisecond of waiting for the timer: a slot closer than that goes now. It goes at
        // most that early, and the next slot is still counted from this one, not from now,
        // so the rate holds over any stretch longer than a millisecond.
        if slot.saturating_duration_since(Instant::now()) >= TIMER_RESOLUTION {
            tokio::time::sleep_until(slot).await;
        }
        Ok(())
    }
}

/// The resolution of tokio's timer: a sleep is rounded up to a whole millisecond.
/// <https://docs.rs/tokio/latest/tokio/time/fn.sleep.html> ("Sleep operates at millisecond
/// granularity and should not be used for tasks that require high-resolution timers.")
const TIMER_RESOLUTION: Duration = Duration::from_millis(1);

#[cfg(test)]
mod tests {
    use super::*;

    /// A cutoff no test reaches.
    fn far() -> Instant {
        Instant::now() + Duration::from_secs(3600)
    }

    #[tokio::test(start_paused = true)]
    async fn spaces_sends() {
        let pacer = Pacer::new(5.0);
        let start = Instant::now();
        let mut at = Vec::new();
        for _ in 0..6 {
            pacer.acquire(1, far()).await.unwrap();
            at.push(start.elapsed());
        }
        assert_eq!(at[0], Duration::ZERO);
        assert_eq!(at[5], Duration::from_secs(1));
        // An idle period does not bank a burst.
        tokio::time::sleep(Duration::from_secs(10)).await;
        let t0 = Instant::now();
        pacer.acquire(1, far()).await.unwrap();
        pacer.acquire(1, far()).await.unwrap();
        assert_eq!(t0.elapsed(), Duration::from_millis(200));
    }

    #[tokio::test(start_paused = true)]
    async fn slots_closer_than_the_timer_resolution_do_not_wait() {
        // A million recipients a second: ten sends take slots a microsecond apart, all
        // within the timer's millisecond, so none sleeps (a sleep would round up to it).
        let pacer = Pacer::new(1_000_000.0);
        let start = Instant::now();
        for _ in 0..10 {
            pacer.acquire(1, far()).await.unwrap();
        }
        assert_eq!(start.elapsed(), Duration::ZERO);
        // The slots were taken all the same: the 1,001st recipient's slot is a millisecond
        // after the first, so that send waits for it.
        pacer.acquire(990, far()).await.unwrap();
        pacer.acquire(1, far()).await.unwrap();
        assert_eq!(start.elapsed(), Duration::from_millis(1));
    }

    #[tokio::test(start_paused = true)]
    async fn counts_recipients_not_messages() {
        // 14 recipients a second: a message to 50 goes at once, and the next one waits until
        // those 50 recipients' share of the rate has passed.
        let pacer = Pacer::new(14.0);
        let start = Instant::now();
        pacer.acquire(50, far()).await.unwrap();
        assert_eq!(start.elapsed(), Duration::ZERO);
        pacer.acquire(1, far()).await.unwrap();
        let waited = start.elapsed();
        assert!(
            waited >= Duration::from_secs_f64(50.0 / 14.0) - Duration::from_millis(1)
                && waited <= Duration::from_secs_f64(50.0 / 14.0) + Duration::from_millis(1),
            "{waited:?}"
        );
        // Over the whole run: 50 + 1 + 3 recipients in (50 + 1 + 3 - 3) / 14 s at the most.
        pacer.acquire(3, far()).await.unwrap();
        assert!(start.elapsed() <= Duration::from_secs_f64(51.0 / 14.0) + Duration::from_millis(1));
    }

    #[tokio::test(start_paused = true)]
    async fn a_slot_after_the_cutoff_is_deferred_and_left_free() {
        // 1 recipient a second with 2.5 s to the cutoff: slots at 0, 1 and 2 s; the fourth
        // message (at 3 s) is deferred, takes no slot, and the next invocation's cutoff
        // lets it through in that same slot.
        let pacer = Pacer::new(1.0);
        let start = Instant::now();
        let cutoff = start + Duration::from_millis(2500);
        for _ in 0..3 {
            pacer.acquire(1, cutoff).await.unwrap();
        }
        assert_eq!(start.elapsed(), Duration::from_secs(2));
        assert_eq!(
            pacer.acquire(1, cutoff).await,
            Err(Deferred {
                wait: Duration::from_secs(1)
            })
        );
        assert_eq!(
            start.elapsed(),
            Duration::from_secs(2),
            "a deferral never waits"
        );
        pacer.acquire(1, far()).await.unwrap();
        assert_eq!(start.elapsed(), Duration::from_secs(3));
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_records_share_the_rate() {
        let pacer = std::sync::Arc::new(Pacer::new(10.0));
        let start = Instant::now();
        let cutoff = start + Duration::from_millis(450);
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let pacer = pacer.clone();
                tokio::spawn(async move { pacer.acquire(1, cutoff).await })
            })
            .collect();
        let mut sent = 0;
        for t in tasks {
            if t.await.unwrap().is_ok() {
                sent += 1;
            }
        }
        // Slots at 0, 100, ..., 400 ms fit before the cutoff; the other three are deferred.
        assert_eq!(sent, 5);
        assert_eq!(start.elapsed(), Duration::from_millis(400));
    }
}
