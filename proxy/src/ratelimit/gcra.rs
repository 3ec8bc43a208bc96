//! GCRA on the node: one theoretical arrival time (TAT) per bucket, in a
//! sharded table. A request is allowed when the TAT is at most one burst
//! (the whole per-minute limit) ahead of now; allowing it moves the TAT by
//! one emission interval; refusing it changes nothing. Buckets whose TAT has
//! passed are full again and are swept, so the table stays as large as the
//! set of recently active clients.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, Hasher, RandomState};
use std::sync::Mutex;
use std::time::Instant;

use super::Decision;

const NANOS_PER_MINUTE: u64 = 60_000_000_000;
const SHARDS: usize = 32;

/// The decision for a bucket whose TAT is `tat` (ns), at `now` (ns), with
/// `per_minute` requests a minute; and the TAT to store when allowed.
/// The same arithmetic as the Redis script of `fleet.rs`.
pub fn decide(tat: u64, now: u64, per_minute: u64) -> (Decision, Option<u64>) {
    let per_minute = per_minute.max(1);
    let interval = (NANOS_PER_MINUTE / per_minute).max(1);
    let burst = interval.saturating_mul(per_minute);
    let tat = tat.max(now);
    let allow_at = tat.saturating_sub(burst - interval);
    if now < allow_at {
        let decision = Decision {
            allowed: false,
            limit: per_minute,
            remaining: 0,
            reset_seconds: ceil_seconds(tat - now),
            retry_after_seconds: ceil_seconds(allow_at - now).max(1),
        };
        return (decision, None);
    }
    let new_tat = tat + interval;
    let used = (new_tat - now).div_ceil(interval);
    let decision = Decision {
        allowed: true,
        limit: per_minute,
        remaining: per_minute.saturating_sub(used),
        reset_seconds: ceil_seconds(new_tat - now),
        retry_after_seconds: 0,
    };
    (decision, Some(new_tat))
}

fn ceil_seconds(nanos: u64) -> u64 {
    nanos.div_ceil(1_000_000_000)
}

/// The node's buckets.
#[derive(Debug)]
pub struct LocalGcra {
    epoch: Instant,
    hasher: RandomState,
    shards: Vec<Mutex<Shard>>,
}

#[derive(Debug, Default)]
struct Shard {
    tats: HashMap<(String, u64), u64>,
    /// Sweep when the shard grows past this; doubles with live entries.
    sweep_at: usize,
}

impl Default for LocalGcra {
    fn default() -> Self {
        Self {
            epoch: Instant::now(),
            hasher: RandomState::new(),
            shards: (0..SHARDS)
                .map(|_| {
                    Mutex::new(Shard {
                        tats: HashMap::new(),
                        sweep_at: 1024,
                    })
                })
                .collect(),
        }
    }
}

impl LocalGcra {
    /// Takes one request from `key`'s bucket of `per_minute`.
    pub fn check(&self, key: &str, per_minute: u64) -> Decision {
        let now = u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX);
        let mut hasher = self.hasher.build_hasher();
        key.hash(&mut hasher);
        per_minute.hash(&mut hasher);
        let shard = &self.shards[(hasher.finish() as usize) % SHARDS];
        let mut shard = shard.lock().unwrap_or_else(|p| p.into_inner());
        // The key is only allocated for a bucket that is new.
        let tat = shard
            .tats
            .get(&(key.to_owned(), per_minute))
            .copied()
            .unwrap_or(now);
        let (decision, new_tat) = decide(tat, now, per_minute);
        if let Some(new_tat) = new_tat {
            shard.tats.insert((key.to_owned(), per_minute), new_tat);
            if shard.tats.len() > shard.sweep_at {
                shard.tats.retain(|_, tat| *tat > now);
                shard.sweep_at = (shard.tats.len() * 2).max(1024);
            }
        }
        decision
    }

    /// Buckets held (full ones may linger until the next sweep).
    pub fn buckets(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|p| p.into_inner()).tats.len())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: u64 = 1_000_000_000;

    #[test]
    fn a_burst_up_to_the_limit_then_one_per_interval() {
        let mut tat = 0;
        let mut allowed = 0;
        for _ in 0..100 {
            let (decision, new_tat) = decide(tat, 0, 60);
            if let Some(t) = new_tat {
                tat = t;
                allowed += 1;
            }
            assert_eq!(decision.limit, 60);
        }
        assert_eq!(allowed, 60, "the whole limit at once, no more");
        let (refused, none) = decide(tat, 0, 60);
        assert!(!refused.allowed && none.is_none());
        assert_eq!(refused.remaining, 0);
        assert_eq!(refused.retry_after_seconds, 1);
        assert_eq!(refused.reset_seconds, 60);
        // One interval later exactly one more goes through.
        let (later, _) = decide(tat, SECOND, 60);
        assert!(later.allowed);
        assert_eq!(later.remaining, 0);
    }

    #[test]
    fn remaining_counts_down_and_refusals_take_nothing() {
        let (first, tat) = decide(0, 0, 5);
        assert_eq!(
            (first.allowed, first.remaining, first.reset_seconds),
            (true, 4, 12)
        );
        let mut tat = tat.expect("allowed");
        for expected in (0..4).rev() {
            let (d, t) = decide(tat, 0, 5);
            assert_eq!(d.remaining, expected);
            tat = t.expect("allowed");
        }
        for _ in 0..10 {
            assert!(decide(tat, 0, 5).1.is_none());
        }
        // 12 s (one interval) later: exactly one, refusals did not push it.
        assert!(decide(tat, 12 * SECOND, 5).0.allowed);
    }

    #[test]
    fn the_table_keeps_buckets_apart_and_sweeps_full_ones() {
        let gcra = LocalGcra::default();
        let allowed = (0..10).filter(|_| gcra.check("a", 5).allowed).count();
        assert_eq!(allowed, 5);
        assert!(gcra.check("b", 5).allowed, "another key has its own bucket");
        assert!(
            gcra.check("a", 6).allowed,
            "another limit is another bucket"
        );
        for i in 0..40_000 {
            gcra.check(&format!("ip:{i}"), 1_000_000_000);
        }
        // Each of those buckets refills within nanoseconds: swept as they go.
        assert!(gcra.buckets() < 40_000, "swept: {}", gcra.buckets());
    }
}
