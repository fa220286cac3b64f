//! How long the writer holds a batch back for the records of exchanges still in flight.
//!
//! Why: one `fdatasync` costs 120-200 us of kernel CPU on a virtual machine, as much as a
//! fifth of governing a page. Records that share a sync share that cost, but a batch only
//! grows if another record arrives while it is held, and every held record's response waits
//! as long. So whether to wait depends on how fast records arrive, not only on whether other
//! exchanges are in flight:
//!
//! - the writer keeps a moving average of the gaps between records (their send times, so a
//!   queue that formed during a sync does not look like a burst);
//! - it waits only while that gap is shorter than the window (a record is likely to come in
//!   time), and then until [`TARGET`] more records came, nothing else is in flight, or the
//!   window is over, whichever is first. So at a high rate a batch is held only as long as
//!   a few records take.
//!
//! An earlier rule waited whenever any exchange was in flight and, after a wait that brought
//! nothing, skipped the next 8 batches. At ~300 pages/s with a 2 ms window (one record every
//! ~3 ms) half of its waits were fruitless, so it spent most batches not waiting: 0.9 syncs
//! per page. A light load (gap longer than the window) never waits under either rule, and
//! a lone exchange never waits: the writer waits only while others are in flight.

use std::time::{Duration, Instant};

/// Records a held batch waits for at most before it is synced: with them, one sync covers
/// five records, and a fifth of a sync's cost per record is within what a page's other work
/// varies by.
pub const TARGET: usize = 4;

/// Weight of the newest gap in the moving average (1/8: a change of pace shows within a
/// few dozen records).
const SHIFT: u32 = 3;

/// The pace of arriving records.
#[derive(Debug, Clone)]
pub struct Pace {
    window: Duration,
    last: Option<Instant>,
    /// Moving average of the gaps between records; None until two have arrived.
    gap: Option<Duration>,
}

impl Pace {
    /// A pace for the writer's commit window (`audit.commit_window`).
    pub fn new(window: Duration) -> Self {
        Pace {
            window,
            last: None,
            gap: None,
        }
    }

    /// A record was sent at `at`. A gap longer than twice the window counts as twice the
    /// window: after an idle hour the writer does not need an hour's worth of records to
    /// wait again, only a few dozen quick ones.
    pub fn arrived(&mut self, at: Instant) {
        if let Some(last) = self.last {
            let sample = at.saturating_duration_since(last).min(self.window * 2);
            self.gap = Some(match self.gap {
                None => sample,
                // one of the two differences is zero
                Some(avg) => (avg + sample.saturating_sub(avg) / (1 << SHIFT))
                    .saturating_sub(avg.saturating_sub(sample) / (1 << SHIFT)),
            });
        }
        // sends from several threads may arrive slightly out of order: keep the newest
        if self.last.is_none_or(|last| at > last) {
            self.last = Some(at);
        }
    }

    /// How long to hold the batch for more records at most: None to sync at once (no
    /// window, no estimate yet, or records too far apart to share the window).
    pub fn wait(&self) -> Option<Duration> {
        let gap = self.gap?;
        (gap < self.window).then_some(self.window)
    }

    /// The average gap between records.
    #[cfg(test)]
    pub fn gap(&self) -> Option<Duration> {
        self.gap
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    /// A pace fed records `every` apart, `n` of them, from `start`.
    fn fed(window: Duration, start: Instant, every: Duration, n: u32) -> (Pace, Instant) {
        let mut pace = Pace::new(window);
        let mut at = start;
        for _ in 0..n {
            pace.arrived(at);
            at += every;
        }
        (pace, at)
    }

    #[test]
    fn no_wait_before_two_records_have_shown_a_pace() {
        let t0 = Instant::now();
        let mut pace = Pace::new(5 * MS);
        assert_eq!(pace.wait(), None);
        pace.arrived(t0);
        assert_eq!(pace.wait(), None, "one record is no pace");
        pace.arrived(t0 + MS);
        assert_eq!(pace.gap(), Some(MS));
        assert_eq!(pace.wait(), Some(5 * MS), "1 ms apart: the window");
    }

    #[test]
    fn records_further_apart_than_the_window_never_wait() {
        let t0 = Instant::now();
        // moderate load: one record every 20 ms, window 5 ms
        let (pace, _) = fed(5 * MS, t0, 20 * MS, 50);
        assert_eq!(pace.gap(), Some(10 * MS), "capped at twice the window");
        assert_eq!(pace.wait(), None);
        // exactly the window apart: still no wait
        let (pace, _) = fed(5 * MS, t0, 5 * MS, 50);
        assert_eq!(pace.wait(), None);
    }

    #[test]
    fn a_busy_pace_waits_up_to_the_window() {
        let t0 = Instant::now();
        // ~300 records/s: one every 3 ms, the window is 5 ms
        let (pace, _) = fed(5 * MS, t0, 3 * MS, 50);
        assert_eq!(pace.gap(), Some(3 * MS));
        assert_eq!(pace.wait(), Some(5 * MS));
        // ~2000 records/s (the writer stops waiting after TARGET records)
        let (pace, _) = fed(5 * MS, t0, MS / 2, 50);
        assert_eq!(pace.wait(), Some(5 * MS));
    }

    #[test]
    fn no_window_no_wait() {
        let (pace, _) = fed(Duration::ZERO, Instant::now(), MS, 50);
        assert_eq!(pace.wait(), None);
    }

    #[test]
    fn the_pace_follows_a_change_of_load_within_a_few_dozen_records() {
        let t0 = Instant::now();
        let (mut pace, mut at) = fed(5 * MS, t0, MS, 100);
        assert!(pace.wait().is_some());
        // an idle hour, then one record: the estimate moves, but only by one capped sample
        at += Duration::from_secs(3600);
        pace.arrived(at);
        let after_idle = pace.gap().expect("a gap");
        assert!(after_idle < 3 * MS, "{after_idle:?}");
        assert!(
            pace.wait().is_some(),
            "one late record does not end the pace"
        );
        // the load drops to one record every 50 ms: waits stop after some records ...
        let mut stopped = None;
        for n in 1..=40 {
            at += 50 * MS;
            pace.arrived(at);
            if pace.wait().is_none() {
                stopped = Some(n);
                break;
            }
        }
        let stopped = stopped.expect("waits stop at a slow pace");
        assert!(stopped <= 16, "after {stopped} records");
        // ... and start again when it rises
        let mut started = None;
        for n in 1..=40 {
            at += MS;
            pace.arrived(at);
            if pace.wait().is_some() {
                started = Some(n);
                break;
            }
        }
        assert!(started.expect("waits start again") <= 16);
    }

    #[test]
    fn records_sent_out_of_order_count_as_no_gap() {
        let t0 = Instant::now() + Duration::from_secs(1);
        let mut pace = Pace::new(5 * MS);
        pace.arrived(t0);
        pace.arrived(t0.checked_sub(MS).expect("an instant")); // sent a moment earlier on another thread, received later
        assert_eq!(pace.gap(), Some(Duration::ZERO));
        pace.arrived(t0 + 2 * MS);
        // the gap is measured from the newest send time, not the late one
        assert_eq!(pace.gap(), Some(2 * MS / 8));
    }
}
