//! Slow clients: a connection gets `--header-timeout-ms` to deliver each
//! request's headers, counted from its accept or from the previous response
//! (so it also bounds idle keep-alive connections), then it is closed.
//! pingora only bounds each single read (60 s), so a client dripping a byte
//! a minute (slowloris) would hold its connection forever.
//!
//! [`HeaderDeadline`] wraps pingora's proxy app: it runs each request under
//! a timer and a task-local flag that the gateway raises as soon as the
//! headers are parsed ([`headers_received`], from `new_ctx`); when the timer
//! fires first, the request's future is dropped, which closes the
//! connection. Once the headers are in, the deadline no longer applies:
//! bodies and upstream calls have their own timeouts. The timer is
//! pingora's fast `sleep` (deadlines rounded to 10 ms ticks and shared, no
//! lock to arm or drop one), not tokio's, whose entries are registered and
//! deregistered under the time driver's lock on every request.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use pingora::apps::{HttpServerApp, HttpServerOptions, ReusedHttpStream};
use pingora::protocols::http::ServerSession;
use pingora::protocols::http::v2::server::H2Options;
use pingora::server::ShutdownWatch;

use crate::metrics::Metrics;

tokio::task_local! {
    static HEADERS_IN: Arc<AtomicBool>;
}

/// Marks the current request's headers as received (a no-op outside a
/// [`HeaderDeadline`]).
pub fn headers_received() {
    let _ = HEADERS_IN.try_with(|flag| flag.store(true, Ordering::Relaxed));
}

/// An HTTP app whose requests must deliver their headers within `limit`.
pub struct HeaderDeadline<A> {
    inner: Arc<A>,
    limit: Duration,
    metrics: Arc<Metrics>,
}

impl<A> HeaderDeadline<A> {
    pub fn new(inner: A, limit: Duration, metrics: Arc<Metrics>) -> Self {
        Self {
            inner: Arc::new(inner),
            limit,
            metrics,
        }
    }
}

#[async_trait]
impl<A> HttpServerApp for HeaderDeadline<A>
where
    A: HttpServerApp + Send + Sync + 'static,
{
    async fn process_new_http(
        self: &Arc<Self>,
        session: ServerSession,
        shutdown: &ShutdownWatch,
    ) -> Option<ReusedHttpStream> {
        let received = Arc::new(AtomicBool::new(false));
        let request = HEADERS_IN.scope(
            Arc::clone(&received),
            self.inner.process_new_http(session, shutdown),
        );
        tokio::pin!(request);
        tokio::select! {
            biased;
            done = &mut request => done,
            () = pingora::prelude::sleep(self.limit) => {
                if received.load(Ordering::Relaxed) {
                    request.await
                } else {
                    self.metrics.slow_client_closed();
                    tracing::debug!(limit_ms = self.limit.as_millis(), "request headers too slow; connection closed");
                    None
                }
            }
        }
    }

    fn h2_options(&self) -> Option<H2Options> {
        self.inner.h2_options()
    }

    fn server_options(&self) -> Option<&HttpServerOptions> {
        self.inner.server_options()
    }

    async fn http_cleanup(&self) {
        self.inner.http_cleanup().await;
    }
}
