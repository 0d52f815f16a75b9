//! The emulator's one clock: every timer (visibility, delay, retention, schedules) reads it.
//!
//! Three kinds:
//! - [`RealClock`]: wall-clock time;
//! - [`AcceleratedClock`]: virtual time = start + factor × elapsed real time, so a day of
//!   schedules passes in minutes (`x60`, `x1440`);
//! - [`ManualClock`]: time moves only by [`ManualClock::advance`] / [`ManualClock::set`]; every
//!   waiter whose instant is reached wakes at once, in order of instant. Tests use it.
//!
//! Waiting goes through [`Clock::sleep_until`], which works for all three, so code never needs
//! to know which kind of time it runs on. The accelerated clock measures elapsed time with
//! `tokio::time::Instant`, so `tokio::time::pause` drives it in tests without real sleeping.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use futures::future::BoxFuture;
use tokio::sync::{oneshot, watch};

/// Errors of the clock module.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ClockError {
    /// The CLI value is not `real`, `x<factor>` or `manual`.
    #[error(
        "invalid clock {0:?}: expected `real`, `manual` or `x<factor>` with a positive factor (like `x60`)"
    )]
    Invalid(String),
    /// A manual clock was asked to go back in time.
    #[error("the manual clock cannot go back from {now} to {to}")]
    Backwards {
        /// The clock's current time.
        now: DateTime<Utc>,
        /// The requested time.
        to: DateTime<Utc>,
    },
    /// The clock cannot represent the requested time.
    #[error("time out of range")]
    OutOfRange,
}

/// A source of "now" that can also wait until an instant of its own time.
pub trait Clock: Send + Sync + fmt::Debug {
    /// Now, in this clock's time.
    fn now(&self) -> DateTime<Utc>;

    /// Completes once this clock's time has reached `at` (at once if it already has).
    ///
    /// The future owns what it needs (`'static`), so it can be raced in `select!` or moved
    /// into a task; dropping it unregisters the waiter.
    fn sleep_until(&self, at: DateTime<Utc>) -> BoxFuture<'static, ()>;

    /// Completes once `by` of this clock's time has passed.
    fn sleep(&self, by: Duration) -> BoxFuture<'static, ()> {
        let at = self
            .now()
            .checked_add_signed(TimeDelta::from_std(by).unwrap_or(TimeDelta::MAX))
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        self.sleep_until(at)
    }

    /// The manual clock behind this one, for `advance` and `set`; `None` for other kinds.
    fn as_manual(&self) -> Option<&ManualClock> {
        None
    }
}

/// The clock every component shares.
pub type SharedClock = Arc<dyn Clock>;

/// Which clock to run on, as given on the command line.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ClockSpec {
    /// Wall-clock time.
    Real,
    /// Virtual time running `factor` times faster than real time.
    Accelerated {
        /// How many virtual seconds pass per real second (positive, finite).
        factor: f64,
    },
    /// Time moves only when told to.
    Manual,
}

impl ClockSpec {
    /// Builds the clock; accelerated and manual clocks start at `start`.
    pub fn build(self, start: DateTime<Utc>) -> SharedClock {
        match self {
            ClockSpec::Real => real(),
            ClockSpec::Accelerated { factor } => accelerated(start, factor),
            ClockSpec::Manual => Arc::new(ManualClock::new(start)),
        }
    }
}

impl fmt::Display for ClockSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClockSpec::Real => f.write_str("real"),
            ClockSpec::Accelerated { factor } => write!(f, "x{factor}"),
            ClockSpec::Manual => f.write_str("manual"),
        }
    }
}

impl FromStr for ClockSpec {
    type Err = ClockError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse(s)
    }
}

/// Parses the CLI value: `real`, `manual`, or `x<factor>` (`x60`, `x0.5`) with a positive factor.
/// Usable as a clap `value_parser`.
pub fn parse(s: &str) -> Result<ClockSpec, ClockError> {
    let trimmed = s.trim();
    match trimmed.to_ascii_lowercase().as_str() {
        "real" => return Ok(ClockSpec::Real),
        "manual" => return Ok(ClockSpec::Manual),
        _ => {}
    }
    let factor = trimmed
        .strip_prefix(['x', 'X'])
        .and_then(|f| f.parse::<f64>().ok())
        .filter(|f| f.is_finite() && *f > 0.0)
        .ok_or_else(|| ClockError::Invalid(s.to_string()))?;
    Ok(ClockSpec::Accelerated { factor })
}

/// A shared real clock.
pub fn real() -> SharedClock {
    Arc::new(RealClock)
}

/// A shared accelerated clock starting at `start` now.
///
/// # Panics
/// If `factor` is not positive and finite (use [`parse`] to validate user input).
pub fn accelerated(start: DateTime<Utc>, factor: f64) -> SharedClock {
    Arc::new(AcceleratedClock::new(start, factor))
}

/// A shared manual clock starting at `start`, with a handle to move it.
pub fn manual(start: DateTime<Utc>) -> (SharedClock, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(start));
    (clock.clone(), clock)
}

/// Real, wall-clock time.
#[derive(Debug, Default, Clone, Copy)]
pub struct RealClock;

impl Clock for RealClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }

    fn sleep_until(&self, at: DateTime<Utc>) -> BoxFuture<'static, ()> {
        // Re-checks after waking: the wall clock may have been adjusted while sleeping.
        Box::pin(async move {
            for _ in 0..64 {
                let left = (at - Utc::now()).to_std().unwrap_or(Duration::ZERO);
                if left.is_zero() {
                    return;
                }
                tokio::time::sleep(left).await;
            }
        })
    }
}

/// Virtual time running `factor` times faster than real time.
#[derive(Debug, Clone)]
pub struct AcceleratedClock {
    start: DateTime<Utc>,
    started: tokio::time::Instant,
    factor: f64,
}

impl AcceleratedClock {
    /// Virtual time starts at `start` now and runs `factor` times faster than real time.
    ///
    /// # Panics
    /// If `factor` is not positive and finite.
    pub fn new(start: DateTime<Utc>, factor: f64) -> Self {
        assert!(
            factor.is_finite() && factor > 0.0,
            "the acceleration factor must be positive"
        );
        AcceleratedClock {
            start,
            started: tokio::time::Instant::now(),
            factor,
        }
    }

    /// The acceleration factor.
    pub fn factor(&self) -> f64 {
        self.factor
    }

    fn real_instant_of(&self, at: DateTime<Utc>) -> tokio::time::Instant {
        let virtual_left = (at - self.start).to_std().unwrap_or(Duration::ZERO);
        let real_left = Duration::try_from_secs_f64(virtual_left.as_secs_f64() / self.factor)
            .unwrap_or(Duration::from_secs(u32::MAX as u64));
        self.started
            .checked_add(real_left)
            .unwrap_or_else(|| self.started + Duration::from_secs(u32::MAX as u64))
    }
}

impl Clock for AcceleratedClock {
    fn now(&self) -> DateTime<Utc> {
        let elapsed = self.started.elapsed().as_secs_f64() * self.factor;
        let delta = TimeDelta::from_std(Duration::from_secs_f64(elapsed)).unwrap_or(TimeDelta::MAX);
        self.start
            .checked_add_signed(delta)
            .unwrap_or(DateTime::<Utc>::MAX_UTC)
    }

    fn sleep_until(&self, at: DateTime<Utc>) -> BoxFuture<'static, ()> {
        let deadline = self.real_instant_of(at);
        Box::pin(tokio::time::sleep_until(deadline))
    }
}

/// Time that moves only when told to.
pub struct ManualClock {
    state: Arc<Mutex<ManualState>>,
    /// How many waiters are registered, for tests that must advance only once someone waits.
    waiting: Arc<watch::Sender<usize>>,
}

struct ManualState {
    now: DateTime<Utc>,
    next_id: u64,
    /// Keyed by (instant, registration order) so waiters wake in order of instant.
    waiters: BTreeMap<(DateTime<Utc>, u64), oneshot::Sender<()>>,
}

impl fmt::Debug for ManualClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = lock(&self.state);
        f.debug_struct("ManualClock")
            .field("now", &state.now)
            .field("waiters", &state.waiters.len())
            .finish()
    }
}

fn lock(state: &Mutex<ManualState>) -> MutexGuard<'_, ManualState> {
    // A panic while holding this lock cannot leave the state half-updated, so poison is ignored.
    state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl ManualClock {
    /// A manual clock standing at `start`.
    pub fn new(start: DateTime<Utc>) -> Self {
        ManualClock {
            state: Arc::new(Mutex::new(ManualState {
                now: start,
                next_id: 0,
                waiters: BTreeMap::new(),
            })),
            waiting: Arc::new(watch::Sender::new(0)),
        }
    }

    /// Moves time forward by `by`, waking every waiter now due, in order of instant.
    /// Returns the new time.
    pub fn advance(&self, by: Duration) -> Result<DateTime<Utc>, ClockError> {
        let delta = TimeDelta::from_std(by).map_err(|_| ClockError::OutOfRange)?;
        let mut state = lock(&self.state);
        let to = state
            .now
            .checked_add_signed(delta)
            .ok_or(ClockError::OutOfRange)?;
        Self::move_to(&mut state, to);
        self.waiting.send_replace(state.waiters.len());
        Ok(to)
    }

    /// Jumps to `to` (not earlier than now), waking every waiter now due, in order of instant.
    pub fn set(&self, to: DateTime<Utc>) -> Result<(), ClockError> {
        let mut state = lock(&self.state);
        if to < state.now {
            return Err(ClockError::Backwards { now: state.now, to });
        }
        Self::move_to(&mut state, to);
        self.waiting.send_replace(state.waiters.len());
        Ok(())
    }

    /// Waits until at least `count` waiters are registered, so a test can advance the clock
    /// only once the code under test is really waiting on it.
    pub async fn wait_for_waiters(&self, count: usize) {
        let mut changes = self.waiting.subscribe();
        // Fails only if the sender is gone, which cannot happen while `self` is borrowed.
        let _ = changes.wait_for(|&n| n >= count).await;
    }

    /// How many waiters are registered and not yet due.
    pub fn pending_waiters(&self) -> usize {
        lock(&self.state).waiters.len()
    }

    /// The earliest instant someone waits for, if any.
    pub fn next_wakeup(&self) -> Option<DateTime<Utc>> {
        lock(&self.state).waiters.keys().next().map(|(at, _)| *at)
    }

    fn move_to(state: &mut ManualState, to: DateTime<Utc>) {
        state.now = to;
        // Everything at or before `to`: split_off keeps the later ones.
        let later = state.waiters.split_off(&(to, u64::MAX));
        let due = std::mem::replace(&mut state.waiters, later);
        for (_, waiter) in due {
            // The receiver may be gone (its future dropped); nothing to wake then.
            let _ = waiter.send(());
        }
    }
}

/// Removes a manual waiter when its future is dropped before it fired.
struct WaiterGuard {
    state: Arc<Mutex<ManualState>>,
    waiting: Arc<watch::Sender<usize>>,
    key: (DateTime<Utc>, u64),
}

impl Drop for WaiterGuard {
    fn drop(&mut self) {
        let mut state = lock(&self.state);
        if state.waiters.remove(&self.key).is_some() {
            self.waiting.send_replace(state.waiters.len());
        }
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        lock(&self.state).now
    }

    fn sleep_until(&self, at: DateTime<Utc>) -> BoxFuture<'static, ()> {
        let mut state = lock(&self.state);
        if at <= state.now {
            return Box::pin(std::future::ready(()));
        }
        let key = (at, state.next_id);
        state.next_id += 1;
        let (tx, rx) = oneshot::channel();
        state.waiters.insert(key, tx);
        self.waiting.send_replace(state.waiters.len());
        drop(state);
        // Registered now rather than at first poll, so an advance in between is not missed.
        let guard = WaiterGuard {
            state: self.state.clone(),
            waiting: self.waiting.clone(),
            key,
        };
        Box::pin(async move {
            let _guard = guard;
            let _ = rx.await;
        })
    }

    fn as_manual(&self) -> Option<&ManualClock> {
        Some(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn t0() -> DateTime<Utc> {
        "2026-01-01T00:00:00Z".parse().unwrap()
    }

    #[test]
    fn parses_cli_values() {
        assert_eq!(parse("real").unwrap(), ClockSpec::Real);
        assert_eq!(parse("manual").unwrap(), ClockSpec::Manual);
        assert_eq!(
            parse("x60").unwrap(),
            ClockSpec::Accelerated { factor: 60.0 }
        );
        assert_eq!(
            parse("x0.5").unwrap(),
            ClockSpec::Accelerated { factor: 0.5 }
        );
        for bad in ["x0", "x-2", "x", "60", "fast", "xinf", "xNaN"] {
            assert!(matches!(parse(bad), Err(ClockError::Invalid(_))), "{bad}");
        }
        assert_eq!("x1440".parse::<ClockSpec>().unwrap().to_string(), "x1440");
    }

    #[tokio::test]
    async fn manual_advance_wakes_exactly_the_due_waiters() {
        let clock = Arc::new(ManualClock::new(t0()));
        let woken = Arc::new(AtomicUsize::new(0));
        let mut tasks = BTreeMap::new();
        // Registered out of order on purpose.
        for secs in [30, 10, 20, 40] {
            let fut = clock.sleep_until(t0() + TimeDelta::seconds(secs));
            let woken = woken.clone();
            let task = tokio::spawn(async move {
                fut.await;
                woken.fetch_add(1, Ordering::SeqCst);
            });
            tasks.insert(secs, task);
        }
        assert_eq!(clock.pending_waiters(), 4);
        assert_eq!(clock.next_wakeup(), Some(t0() + TimeDelta::seconds(10)));

        clock.advance(Duration::from_secs(25)).unwrap();
        tasks.remove(&10).unwrap().await.unwrap();
        tasks.remove(&20).unwrap().await.unwrap();
        // Give a wrongly woken task every chance to run before checking.
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert_eq!(woken.load(Ordering::SeqCst), 2);
        assert!(tasks.values().all(|t| !t.is_finished()));
        assert_eq!(clock.pending_waiters(), 2);
        assert_eq!(clock.now(), t0() + TimeDelta::seconds(25));

        clock.set(t0() + TimeDelta::seconds(40)).unwrap();
        for (_, task) in tasks {
            task.await.unwrap();
        }
        assert_eq!(woken.load(Ordering::SeqCst), 4);
        assert_eq!(clock.pending_waiters(), 0);
    }

    #[tokio::test]
    async fn manual_waiters_fire_in_order_of_instant() {
        use futures::{FutureExt, StreamExt, stream::FuturesUnordered};
        let clock = ManualClock::new(t0());
        let mut waiting: FuturesUnordered<_> = [3, 1, 2]
            .into_iter()
            .map(|s| {
                clock
                    .sleep_until(t0() + TimeDelta::seconds(s))
                    .map(move |()| s)
            })
            .collect();
        // Poll once so every future is registered and pending.
        assert!(waiting.next().now_or_never().is_none());
        clock.advance(Duration::from_secs(5)).unwrap();
        // FuturesUnordered yields in the order its futures were woken.
        let got: Vec<_> = waiting.collect().await;
        assert_eq!(got, vec![1, 2, 3]);
    }

    #[tokio::test]
    async fn manual_past_instant_is_ready_and_dropped_waiters_unregister() {
        let clock = ManualClock::new(t0());
        clock.sleep_until(t0()).await;
        clock.sleep_until(t0() - TimeDelta::seconds(1)).await;
        let fut = clock.sleep_until(t0() + TimeDelta::seconds(1));
        assert_eq!(clock.pending_waiters(), 1);
        drop(fut);
        assert_eq!(clock.pending_waiters(), 0);
        assert!(matches!(
            clock.set(t0() - TimeDelta::seconds(1)),
            Err(ClockError::Backwards { .. })
        ));
    }

    #[tokio::test]
    async fn wait_for_waiters_resolves_once_someone_waits() {
        let clock = Arc::new(ManualClock::new(t0()));
        let sleeper = {
            let clock = clock.clone();
            tokio::spawn(async move { clock.sleep(Duration::from_secs(1)).await })
        };
        tokio::time::timeout(Duration::from_secs(10), clock.wait_for_waiters(1))
            .await
            .unwrap();
        assert_eq!(clock.pending_waiters(), 1);
        clock.advance(Duration::from_secs(1)).unwrap();
        sleeper.await.unwrap();
        assert_eq!(clock.pending_waiters(), 0);
    }

    #[tokio::test]
    async fn manual_waiter_registered_before_advance_is_not_missed() {
        let clock = ManualClock::new(t0());
        let fut = clock.sleep(Duration::from_secs(5));
        clock.advance(Duration::from_secs(5)).unwrap();
        // Polled only after the advance: must still complete.
        tokio::time::timeout(Duration::from_secs(5), fut)
            .await
            .unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn accelerated_clock_runs_factor_times_faster_without_real_sleeping() {
        let clock = AcceleratedClock::new(t0(), 60.0);
        assert_eq!(clock.now(), t0());
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(clock.now(), t0() + TimeDelta::seconds(60));

        // One virtual hour is one real minute; paused time auto-advances to the deadline.
        let before = tokio::time::Instant::now();
        clock.sleep(Duration::from_secs(3600)).await;
        let real = before.elapsed();
        assert_eq!(real, Duration::from_secs(60));
        assert_eq!(clock.now(), t0() + TimeDelta::seconds(3660));

        // An instant already passed is ready at once.
        let before = tokio::time::Instant::now();
        clock.sleep_until(t0()).await;
        assert_eq!(before.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn spec_builds_each_kind() {
        let manual = ClockSpec::Manual.build(t0());
        assert!(manual.as_manual().is_some());
        assert_eq!(manual.now(), t0());
        let fast = ClockSpec::Accelerated { factor: 2.0 }.build(t0());
        assert!(fast.as_manual().is_none());
        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(fast.now(), t0() + TimeDelta::seconds(20));
        let real = ClockSpec::Real.build(t0());
        assert!((real.now() - Utc::now()).num_seconds().abs() < 5);
    }
}
