//! The epoch ticker: a thread advancing the engine's epoch every
//! [`EPOCH_TICK`], which is what cuts a plugin call at its deadline. It
//! ticks only while calls run or ran lately: after [`IDLE_TICKS`] ticks
//! with no call in flight and none begun, it parks until the next call
//! begins, so a node whose traffic runs no plugin is not woken a thousand
//! times a second for nothing. A call marks itself with [`Ticker::call`]; the guard it
//! gets keeps the ticker going until the call ends, however long it runs.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::Thread;
use std::time::Duration;

use wasmtime::Engine;

/// How often the epoch advances: the granularity of call deadlines.
pub const EPOCH_TICK: Duration = Duration::from_millis(1);

/// Ticks with no call before the ticker parks: long enough that steady
/// plugin traffic never parks it (waking it costs a system call), short
/// enough that a batch of the request log now and then keeps it up only
/// briefly.
const IDLE_TICKS: u32 = 20;

#[derive(Debug, Default)]
struct State {
    stop: AtomicBool,
    /// Calls running now.
    in_flight: AtomicUsize,
    /// Whether a call began since the ticker last looked.
    began: AtomicBool,
    /// Whether the ticker is parked (or about to), waiting for a call.
    parked: AtomicBool,
}

/// The ticker thread's handle; it stops when the engine and every plugin
/// loaded from it (which hold it) are gone.
#[derive(Debug)]
pub struct Ticker {
    state: Arc<State>,
    thread: Thread,
}

/// A call in flight (see [`Ticker::call`]).
#[derive(Debug)]
#[must_use = "the call counts as running only while the guard lives"]
pub struct CallGuard<'a>(&'a State);

impl Drop for CallGuard<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Ticker {
    /// Starts the thread ticking `engine`'s epoch.
    pub fn start(engine: Engine) -> std::io::Result<Self> {
        let state = Arc::new(State::default());
        let shared = Arc::clone(&state);
        let handle = std::thread::Builder::new()
            .name("gatehouse-epoch".into())
            .spawn(move || tick(&engine, &shared))?;
        Ok(Self {
            state,
            thread: handle.thread().clone(),
        })
    }

    /// Marks a call as running until the guard is dropped, waking the
    /// ticker first if it is parked.
    pub fn call(&self) -> CallGuard<'_> {
        let state = &*self.state;
        state.in_flight.fetch_add(1, Ordering::SeqCst);
        state.began.store(true, Ordering::SeqCst);
        // With the ticker's own SeqCst store of `parked` before its last
        // look at `in_flight`, either it sees this call and does not park,
        // or this load sees it parked and wakes it.
        if state.parked.load(Ordering::SeqCst) {
            self.thread.unpark();
        }
        CallGuard(state)
    }

    /// Whether the ticker is parked (no call in flight for a while).
    pub fn is_parked(&self) -> bool {
        self.state.parked.load(Ordering::SeqCst)
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::SeqCst);
        self.thread.unpark();
    }
}

fn tick(engine: &Engine, state: &State) {
    let mut idle = 0;
    while !state.stop.load(Ordering::Relaxed) {
        std::thread::sleep(EPOCH_TICK);
        engine.increment_epoch();
        let busy =
            state.began.swap(false, Ordering::SeqCst) || state.in_flight.load(Ordering::SeqCst) > 0;
        idle = if busy { 0 } else { idle + 1 };
        if idle < IDLE_TICKS {
            continue;
        }
        state.parked.store(true, Ordering::SeqCst);
        if state.in_flight.load(Ordering::SeqCst) == 0 && !state.stop.load(Ordering::SeqCst) {
            // An unpark since the store above (a call, or the ticker's
            // drop) returns at once; a spurious wake-up just ticks again.
            std::thread::park();
        }
        state.parked.store(false, Ordering::SeqCst);
        idle = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eventually(what: &str, check: impl Fn() -> bool) {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !check() {
            assert!(std::time::Instant::now() < deadline, "never {what}");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn parks_when_idle_and_ticks_through_a_long_call() {
        let engine = Engine::default();
        let ticker = Ticker::start(engine.clone()).expect("starts");
        eventually("parked", || ticker.is_parked());
        let call = ticker.call();
        eventually("woken by a call", || !ticker.is_parked());
        // A call running for many times IDLE_TICKS keeps it ticking.
        std::thread::sleep(EPOCH_TICK * IDLE_TICKS * 5);
        assert!(!ticker.is_parked(), "parked during a call");
        drop(call);
        eventually("parked again", || ticker.is_parked());
    }
}
