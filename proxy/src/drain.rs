//! Graceful shutdown. pingora stops accepting on SIGTERM and then sleeps a
//! fixed grace period before cancelling what is left; a node should leave as
//! soon as its in-flight requests are done. Requests hold an [`InFlight`]
//! guard; after the signal a drain thread waits for the count to reach zero
//! (bounded by the grace period, after which pingora's own path finishes the
//! job), runs the exit hook (clean WebSocket close, flush) and exits.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Counts requests in progress.
#[derive(Debug, Clone, Default)]
pub struct InFlight(Arc<AtomicUsize>);

/// One request in progress; dropping it ends it.
#[derive(Debug)]
pub struct InFlightGuard(Arc<AtomicUsize>);

impl InFlight {
    /// A request begins.
    pub fn enter(&self) -> InFlightGuard {
        self.0.fetch_add(1, Ordering::AcqRel);
        InFlightGuard(Arc::clone(&self.0))
    }

    /// Requests in progress now.
    pub fn count(&self) -> usize {
        self.0.load(Ordering::Acquire)
    }
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// What to do once the node is done (stop sync, flush); runs once.
#[derive(Clone, Default)]
pub struct ExitHook(Arc<Mutex<Option<Hook>>>);

type Hook = Box<dyn FnOnce() + Send>;

impl std::fmt::Debug for ExitHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ExitHook")
    }
}

impl ExitHook {
    pub fn new(hook: impl FnOnce() + Send + 'static) -> Self {
        Self(Arc::new(Mutex::new(Some(Box::new(hook)))))
    }

    /// Runs the hook unless it already ran.
    pub fn run(&self) {
        let hook = self.0.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(hook) = hook {
            hook();
        }
    }
}

/// After the shutdown signal: waits (on its own thread) until no request is
/// in flight, then runs `hook` and exits the process. Gives up after `grace`,
/// leaving the rest to pingora.
pub fn exit_when_drained(in_flight: InFlight, grace: Duration, hook: ExitHook) {
    let spawned = std::thread::Builder::new()
        .name("gatehouse-drain".into())
        .spawn(move || {
            // Let pingora broadcast the shutdown so listeners stop accepting.
            std::thread::sleep(Duration::from_millis(50));
            let deadline = Instant::now() + grace;
            while in_flight.count() > 0 {
                if Instant::now() >= deadline {
                    return;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            tracing::info!("in-flight requests done");
            hook.run();
            tracing::info!("gateway node stopped");
            std::process::exit(0);
        });
    if let Err(err) = spawned {
        tracing::error!(error = %err, "drain thread not started; relying on the grace period");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guards_count_requests_in_flight() {
        let in_flight = InFlight::default();
        let a = in_flight.enter();
        let b = in_flight.enter();
        assert_eq!(in_flight.count(), 2);
        drop(a);
        assert_eq!(in_flight.count(), 1);
        drop(b);
        assert_eq!(in_flight.count(), 0);
    }

    #[test]
    fn the_exit_hook_runs_once() {
        let runs = Arc::new(AtomicUsize::new(0));
        let hook = ExitHook::new({
            let runs = Arc::clone(&runs);
            move || {
                runs.fetch_add(1, Ordering::SeqCst);
            }
        });
        hook.run();
        hook.clone().run();
        assert_eq!(runs.load(Ordering::SeqCst), 1);
    }
}
