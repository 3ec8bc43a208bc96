//! The node's work off the hot path, on one thread with its own runtime:
//! following the control plane (`sync`), sealing telemetry into batches
//! (`telemetry::aggregator`), checking services (`telemetry::health`),
//! resolving services' host names again, and keeping the Redis connection
//! of fleet-wide rate limits (`ratelimit::fleet`).
//! Stopping is ordered so nothing is lost: seal the last batch, give the
//! link a moment to deliver it, close the link, spill what is still waiting
//! to the state dir for the next start.

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};

use crate::live::LiveConfig;
use crate::metrics::Metrics;
use crate::plugins::request_log::RequestLog;
use crate::ratelimit::Fleet;
use crate::sync::{Shipping, SyncStatus, Syncer};
use crate::telemetry::aggregator::{self, Aggregator};
use crate::telemetry::health::{self, HealthSettings};
use crate::telemetry::outbox::Outbox;
use crate::telemetry::{Event, Telemetry};
use crate::upstream::RESOLVE_INTERVAL;

/// How long a stopping node waits for its last batches to be acked.
const FINAL_DELIVERY: Duration = Duration::from_secs(2);

/// Everything the background thread runs.
pub struct BackgroundParts {
    pub syncer: Syncer,
    pub shipping: Shipping,
    pub aggregator: Aggregator,
    /// The request log, when the node ships request logs.
    pub request_log: Option<RequestLog>,
    pub events: mpsc::Receiver<Event>,
    pub dropped: Arc<AtomicU64>,
    pub live: LiveConfig,
    pub health: HealthSettings,
    pub telemetry: Telemetry,
    pub metrics: Arc<Metrics>,
    /// Fleet-wide rate limits, whose Redis connection is kept here.
    pub fleet: Option<Arc<Fleet>>,
}

/// The background thread's nice value, above the workers' 0: its work
/// (sealing batches, the request log over a few thousand records, encoding)
/// comes in bursts of milliseconds; at an equal weight a worker sharing its
/// core waits out a whole time slice behind such a burst, which shows in the
/// tail latency. At nice 5 it still gets about a quarter of a busy core,
/// several times what telemetry needs at full load.
const BACKGROUND_NICE: i32 = 5;

/// Lowers the calling thread's scheduling priority to [`BACKGROUND_NICE`]
/// (Linux sets a single thread's nice value through its thread id).
fn yield_to_the_hot_path() {
    let thread = rustix::thread::gettid();
    if let Err(err) = rustix::process::setpriority_process(Some(thread), BACKGROUND_NICE) {
        tracing::debug!(error = %err, "background thread priority unchanged");
    }
}

/// Resolves the served config's host names again every
/// [`RESOLVE_INTERVAL`] (a service behind DNS moves; each compiled config was
/// resolved once when it was built), on a blocking thread.
async fn resolve_again(live: LiveConfig, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(RESOLVE_INTERVAL);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        let Some(config) = live.load() else {
            continue;
        };
        let resolving = tokio::task::spawn_blocking(move || {
            for upstream in config.upstreams.values().filter(|u| u.is_named()) {
                upstream.resolve();
            }
        });
        let _ = resolving.await;
    }
}

/// The running background thread.
pub struct Background {
    stop_telemetry: watch::Sender<bool>,
    telemetry_done: std::sync::mpsc::Receiver<()>,
    stop_sync: watch::Sender<bool>,
    thread: JoinHandle<()>,
    outbox: Arc<Mutex<Outbox>>,
    status: Arc<SyncStatus>,
}

impl Background {
    /// Starts the thread.
    pub fn start(parts: BackgroundParts) -> std::io::Result<Self> {
        let (stop_telemetry, telemetry_stopped) = watch::channel(false);
        let (stop_sync, sync_stopped) = watch::channel(false);
        let (done_tx, telemetry_done) = std::sync::mpsc::channel();
        let outbox = Arc::clone(&parts.shipping.outbox);
        let status = parts.syncer.status();
        let thread = std::thread::Builder::new()
            .name("gatehouse-background".into())
            .spawn(move || {
                yield_to_the_hot_path();
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(err) => {
                        tracing::error!(error = %err, "background runtime did not start");
                        return;
                    }
                };
                runtime.block_on(async move {
                    let BackgroundParts {
                        syncer,
                        shipping,
                        aggregator,
                        request_log,
                        events,
                        dropped,
                        live,
                        health,
                        telemetry,
                        metrics,
                        fleet,
                    } = parts;
                    let fleet_task = fleet.map(|fleet| {
                        let stop = sync_stopped.clone();
                        tokio::spawn(async move { fleet.maintain(stop).await })
                    });
                    let resolve_task =
                        tokio::spawn(resolve_again(live.clone(), sync_stopped.clone()));
                    let health_task = tokio::spawn(health::run(
                        live,
                        health,
                        telemetry,
                        metrics,
                        telemetry_stopped.clone(),
                    ));
                    let aggregator_task = tokio::spawn(async move {
                        aggregator::run(
                            aggregator,
                            request_log,
                            events,
                            shipping.outbox,
                            shipping.sealed,
                            dropped,
                            telemetry_stopped,
                        )
                        .await;
                        let _ = done_tx.send(());
                    });
                    syncer.run(sync_stopped).await;
                    let _ = health_task.await;
                    let _ = resolve_task.await;
                    if let Some(task) = fleet_task {
                        let _ = task.await;
                    }
                    let _ = aggregator_task.await;
                });
            })?;
        Ok(Self {
            stop_telemetry,
            telemetry_done,
            stop_sync,
            thread,
            outbox,
            status,
        })
    }

    /// Stops in order: last batch sealed, delivered if the link allows (at
    /// most [`FINAL_DELIVERY`]), link closed, leftovers spilled to disk.
    pub fn stop(self) {
        let _ = self.stop_telemetry.send(true);
        let _ = self.telemetry_done.recv_timeout(Duration::from_secs(1));
        let deadline = Instant::now() + FINAL_DELIVERY;
        while self.status.connected()
            && !self
                .outbox
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .is_empty()
        {
            if Instant::now() >= deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.stop_sync.send(true);
        let _ = self.thread.join();
        let mut outbox = self.outbox.lock().unwrap_or_else(|p| p.into_inner());
        if !outbox.is_empty() {
            let waiting = outbox.len();
            outbox.spill_all();
            tracing::info!(
                batches = waiting,
                "undelivered telemetry kept in the state dir for the next start"
            );
        }
    }
}
