//! A circuit breaker per hook of each plugin calling a loaded component (by
//! plugin name, so two tenant plugins uploaded from the same bytes trip
//! apart; a new version is a new component, whose breakers start closed):
//! after `failures` failed calls of a hook in a row (timeouts,
//! out-of-memory, traps, answers that are not well formed) that hook is
//! not called for `cooldown`; its calls fail at once as `circuit_open` and
//! the route's failure policy applies, so a broken plugin costs nothing on
//! the hot path. After the cooldown one trial call goes through: success
//! closes the circuit, failure opens it again. Pool exhaustion is
//! back-pressure, not the plugin's fault, and counts neither way. Each hook
//! has its own breaker: an `on-log` that succeeds says nothing of an
//! `on-request` that traps.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// When a breaker trips and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerSettings {
    /// Consecutive failures that open the circuit.
    pub failures: u32,
    /// How long an open circuit refuses calls.
    pub cooldown: Duration,
}

impl Default for BreakerSettings {
    fn default() -> Self {
        Self {
            failures: 5,
            cooldown: Duration::from_secs(10),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Closed {
        failures: u32,
    },
    Open {
        until: Instant,
    },
    /// One trial call is in flight.
    HalfOpen,
}

/// A plugin's hooks, each with its breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hook {
    Request,
    Response,
    Log,
}

/// One breaker per hook of a plugin.
#[derive(Debug)]
pub struct HookBreakers([Breaker; 3]);

impl HookBreakers {
    pub fn new(settings: BreakerSettings) -> Self {
        Self(std::array::from_fn(|_| Breaker::new(settings)))
    }

    /// The breaker of `hook`.
    pub fn of(&self, hook: Hook) -> &Breaker {
        &self.0[hook as usize]
    }
}

/// The hook breakers of each plugin calling one loaded component, by
/// plugin name (empty: the component's own calls, as the built-ins make).
#[derive(Debug)]
pub struct PluginBreakers {
    settings: BreakerSettings,
    by_name: Mutex<HashMap<Arc<str>, Arc<HookBreakers>>>,
}

impl PluginBreakers {
    pub fn new(settings: BreakerSettings) -> Self {
        Self {
            settings,
            by_name: Mutex::default(),
        }
    }

    /// The breakers of the plugin `name`, made on its first call.
    pub fn of(&self, name: &Arc<str>) -> Arc<HookBreakers> {
        let mut by_name = self.by_name.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(breakers) = by_name.get(name) {
            return Arc::clone(breakers);
        }
        let breakers = Arc::new(HookBreakers::new(self.settings));
        by_name.insert(Arc::clone(name), Arc::clone(&breakers));
        breakers
    }
}

/// One hook's breaker.
#[derive(Debug)]
pub struct Breaker {
    settings: BreakerSettings,
    state: Mutex<State>,
}

impl Breaker {
    pub fn new(settings: BreakerSettings) -> Self {
        Self {
            settings,
            state: Mutex::new(State::Closed { failures: 0 }),
        }
    }

    /// Whether a call may go through now; `Err` holds the time left open.
    pub fn admit(&self) -> Result<(), Duration> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        match *state {
            State::Closed { .. } => Ok(()),
            State::Open { until } => {
                let now = Instant::now();
                if now >= until {
                    *state = State::HalfOpen;
                    Ok(())
                } else {
                    Err(until - now)
                }
            }
            // The trial is running; others wait for its verdict.
            State::HalfOpen => Err(Duration::ZERO),
        }
    }

    /// [`Breaker::admit`], as a call that records its outcome when it
    /// finishes ([`Call::finish`]) or, dropped before (its request went
    /// away), records that it says nothing: a trial call never stays in
    /// flight for ever.
    pub fn call(&self) -> Result<Call<'_>, Duration> {
        self.admit().map(|()| Call(Some(self)))
    }

    /// Records the outcome of an admitted call: `Some(true)` succeeded,
    /// `Some(false)` failed, `None` says nothing of the plugin.
    pub fn record(&self, outcome: Option<bool>) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        *state = match (*state, outcome) {
            (State::HalfOpen, None) => State::Open {
                until: Instant::now(),
            },
            (_, None) => return,
            (_, Some(true)) => State::Closed { failures: 0 },
            (State::Closed { failures }, Some(false)) if failures + 1 < self.settings.failures => {
                State::Closed {
                    failures: failures + 1,
                }
            }
            (_, Some(false)) => {
                tracing::warn!(
                    cooldown_ms = self.settings.cooldown.as_millis(),
                    "plugin circuit opened after repeated failures"
                );
                State::Open {
                    until: Instant::now() + self.settings.cooldown,
                }
            }
        };
    }

    /// Whether calls are being refused.
    pub fn is_open(&self) -> bool {
        !matches!(
            *self.state.lock().unwrap_or_else(|p| p.into_inner()),
            State::Closed { .. }
        )
    }
}

/// An admitted call of a breaker's hook.
#[derive(Debug)]
pub struct Call<'a>(Option<&'a Breaker>);

impl Call<'_> {
    /// Records the call's outcome (as [`Breaker::record`]).
    pub fn finish(mut self, outcome: Option<bool>) {
        if let Some(breaker) = self.0.take() {
            breaker.record(outcome);
        }
    }
}

impl Drop for Call<'_> {
    fn drop(&mut self) {
        if let Some(breaker) = self.0.take() {
            breaker.record(None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker(cooldown_ms: u64) -> Breaker {
        Breaker::new(BreakerSettings {
            failures: 3,
            cooldown: Duration::from_millis(cooldown_ms),
        })
    }

    #[test]
    fn opens_after_consecutive_failures_only() {
        let b = breaker(60_000);
        for _ in 0..2 {
            assert!(b.admit().is_ok());
            b.record(Some(false));
        }
        b.record(Some(true));
        for _ in 0..2 {
            b.record(Some(false));
        }
        assert!(b.admit().is_ok(), "a success in between resets the count");
        b.record(Some(false));
        assert!(b.admit().is_err(), "the third failure in a row opens it");
        b.record(None);
        assert!(b.admit().is_err(), "pool exhaustion changes nothing");
    }

    #[test]
    fn each_plugin_name_has_its_own_breakers() {
        let settings = BreakerSettings {
            failures: 1,
            cooldown: Duration::from_secs(60),
        };
        let plugins = PluginBreakers::new(settings);
        let (one, other) = (Arc::from("one"), Arc::from("other"));
        plugins.of(&one).of(Hook::Request).record(Some(false));
        assert!(plugins.of(&one).of(Hook::Request).is_open());
        assert!(!plugins.of(&other).of(Hook::Request).is_open());
        assert!(!plugins.of(&one).of(Hook::Log).is_open());
    }

    #[test]
    fn the_defaults_are_five_failures_and_ten_seconds() {
        let settings = BreakerSettings::default();
        assert_eq!(
            (settings.failures, settings.cooldown),
            (5, Duration::from_secs(10))
        );
    }

    #[test]
    fn one_trial_after_the_cooldown_decides() {
        let b = breaker(20);
        for _ in 0..3 {
            b.record(Some(false));
        }
        assert!(b.admit().is_err());
        std::thread::sleep(Duration::from_millis(30));
        assert!(b.admit().is_ok(), "the trial goes through");
        assert!(b.admit().is_err(), "only one trial at a time");
        b.record(Some(false));
        assert!(b.admit().is_err(), "a failed trial opens it again");
        std::thread::sleep(Duration::from_millis(30));
        assert!(b.admit().is_ok());
        b.record(Some(true));
        assert!(!b.is_open());
        assert!(b.admit().is_ok());
    }

    #[test]
    fn a_trial_dropped_unfinished_lets_the_next_one_through() {
        let b = breaker(20);
        for _ in 0..3 {
            b.record(Some(false));
        }
        std::thread::sleep(Duration::from_millis(30));
        let trial = b.call().expect("the trial goes through");
        assert!(b.call().is_err(), "only one trial at a time");
        drop(trial);
        let trial = b.call().expect("a new trial, not open for ever");
        trial.finish(Some(true));
        assert!(!b.is_open());
    }
}
