//! pingora's own floor for the load benchmark: a reverse proxy with nothing
//! of Gatehouse in it (no routing, policies, metrics or logs), built with
//! the node's server settings (threads, its client read buffer, mimalloc, the
//! same peer options), so `benches/load/run.sh` can tell what a request
//! costs in pingora itself from what Gatehouse adds.
//!
//! `cargo run --release --example bare_pingora -- LISTEN UPSTREAM THREADS
//! [steal]`, e.g. `... 127.0.0.1:18091 127.0.0.1:18081 1`: one
//! single-threaded runtime per thread, as the node runs; `steal` gives the
//! threads one work-stealing runtime (pingora's default) instead.

use std::net::SocketAddr;
use std::time::Duration;

use async_trait::async_trait;
use gatehouse_proxy::node::CLIENT_BUFFERS;
use pingora::listeners::ListenerConfig;
use pingora::prelude::*;
use pingora::server::configuration::ServerConf;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Bare {
    upstream: SocketAddr,
}

#[async_trait]
impl ProxyHttp for Bare {
    type CTX = ();

    fn new_ctx(&self) -> Self::CTX {}

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut ()) -> Result<Box<HttpPeer>> {
        let mut peer = HttpPeer::new(self.upstream, false, String::new());
        let timeout = Duration::from_secs(10);
        peer.options.connection_timeout = Some(timeout);
        peer.options.total_connection_timeout = Some(timeout);
        peer.options.read_timeout = Some(timeout);
        peer.options.write_timeout = Some(timeout);
        Ok(Box::new(peer))
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, listen, upstream, threads, rest @ ..] = args.as_slice() else {
        eprintln!("usage: bare_pingora LISTEN UPSTREAM THREADS [steal]");
        std::process::exit(2);
    };
    let upstream = upstream.parse().expect("UPSTREAM is host:port");
    let threads = threads.parse().expect("THREADS is a number");
    let work_stealing = rest.first().is_some_and(|mode| mode == "steal");
    let conf = ServerConf {
        threads,
        work_stealing,
        // SIGTERM ends it at once (a benchmark's proxy has nothing to drain).
        grace_period_seconds: Some(0),
        graceful_shutdown_timeout_seconds: Some(0),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let app = pingora::proxy::http_proxy(&server.configuration, Bare { upstream });
    let mut proxy = pingora::services::listening::Service::new("bare pingora".to_owned(), app);
    proxy.add_listener(ListenerConfig::tcp(listen).l4_buffer(CLIENT_BUFFERS));
    server.add_service(proxy);
    server.run_forever();
}
