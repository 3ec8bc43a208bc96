//! Faults under traffic, with the real binaries: the control plane killed
//! and restarted while clients keep sending (no request fails, every log
//! arrives once), an upstream that keeps restarting (502 while it is down,
//! no request failed while it is up), slow and oversized clients (cut off,
//! clear 4xx, memory bounded) and 10,000 concurrent connections.

mod support;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{
    ControlPlane, HeldPort, Node, Scratch, Stage, Tenant, eventually, eventually_within,
    serve_upstream,
};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::watch;

/// One request of a load run, as the client saw it.
#[derive(Debug)]
struct Sent {
    id: String,
    start: Instant,
    end: Instant,
    /// The status and the error code of the body (if any), or why no
    /// answer came.
    outcome: Result<(u16, String), String>,
}

/// Sends `GET {url}/{n}` from `clients` concurrent loops, each request
/// with its own `X-Request-Id`, until `stop` turns true.
async fn drive(url: String, clients: usize, stop: watch::Receiver<bool>) -> Vec<Sent> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let loops: Vec<_> = (0..clients)
        .map(|client| {
            let (http, url, stop) = (http.clone(), url.clone(), stop.clone());
            tokio::spawn(async move {
                let mut sent = Vec::new();
                for n in 0.. {
                    if *stop.borrow() {
                        break;
                    }
                    let id = format!("load-{client}-{n}");
                    let start = Instant::now();
                    let outcome = match http
                        .get(format!("{url}/{n}"))
                        .header("x-request-id", &id)
                        .send()
                        .await
                    {
                        Ok(response) => {
                            let status = response.status().as_u16();
                            let body: Value = response.json().await.unwrap_or(Value::Null);
                            let code = body["error"]["code"].as_str().unwrap_or("").to_owned();
                            Ok((status, code))
                        }
                        Err(err) => Err(err.to_string()),
                    };
                    sent.push(Sent {
                        id,
                        start,
                        end: Instant::now(),
                        outcome,
                    });
                }
                sent
            })
        })
        .collect();
    let mut all = Vec::new();
    for handle in loops {
        all.extend(handle.await.expect("load loop"));
    }
    all
}

/// The requests that did not get a 200.
fn failures(sent: &[Sent]) -> Vec<&Sent> {
    sent.iter()
        .filter(|s| !matches!(s.outcome, Ok((200, _))))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_control_plane_killed_under_load() {
    let Stage {
        scratch,
        upstream: _upstream,
        control,
        front,
        tenant,
        service,
    } = Stage::new("cp-under-load").await;
    tenant.route("GET", "/load/*", &service, false).await;
    let node = Node::start(
        &scratch.0,
        &front.url(),
        &tenant.gateway_key,
        &scratch.0.join("node"),
    )
    .await;

    let (stop, stopped) = watch::channel(false);
    let load = tokio::spawn(drive(format!("{}/load", node.base), 8, stopped));
    tokio::time::sleep(Duration::from_millis(800)).await;
    front.point_to(None);
    control.process.kill();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let control = ControlPlane::start(&scratch.0).await;
    front.point_to(Some(control.port));
    eventually("the node to reconnect", || tenant.online()).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    stop.send(true).expect("stop");
    let sent = load.await.expect("load");

    let failed = failures(&sent);
    assert!(
        failed.is_empty(),
        "{} of {} requests failed across the outage, first: {:?}",
        failed.len(),
        sent.len(),
        failed.first()
    );
    assert!(sent.len() >= 100, "only {} requests were sent", sent.len());
    eprintln!(
        "{} requests across a control-plane kill and restart, 0 failed",
        sent.len()
    );

    // Every request's log arrives, once.
    let took = eventually_within(Duration::from_secs(30), "every log", || async {
        tenant.all_logs("").await.len() >= sent.len()
    })
    .await;
    eprintln!("all logs stored {took:?} after the load stopped");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let logs = tenant.all_logs("").await;
    let logged: HashSet<&str> = logs
        .iter()
        .map(|l| l["requestId"].as_str().expect("request id"))
        .collect();
    let expected: HashSet<&str> = sent.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(logs.len(), sent.len(), "no log stored twice");
    assert_eq!(logged, expected, "every request logged");
    drop(control);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_flapping_upstream() {
    let scratch = Scratch::new("flapping");
    let port = HeldPort::new();
    let url = format!("http://{}", port.addr);
    let mut running = Some(serve_upstream(port.listener(), url.clone()));
    let control = ControlPlane::start(&scratch.0).await;
    let tenant = Tenant::register(&control.base).await;
    tenant.unlimited().await;
    let service = tenant.service(&url, 2_000).await;
    tenant.route("GET", "/flap/*", &service, false).await;
    let node = Node::start_for(&scratch.0, &control, &tenant).await;

    let (stop, stopped) = watch::channel(false);
    let load = tokio::spawn(drive(format!("{}/flap", node.base), 4, stopped));
    // (from, until, up): the stretches where the upstream's state was
    // settled; its stops and restarts happen between them.
    let mut phases = Vec::new();
    let mut up_since = Instant::now();
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        phases.push((up_since, Instant::now(), true));
        running.take().expect("running").stop().await;
        let down_since = Instant::now();
        tokio::time::sleep(Duration::from_millis(300)).await;
        phases.push((down_since, Instant::now(), false));
        running = Some(serve_upstream(port.listener(), url.clone()));
        up_since = Instant::now();
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    phases.push((up_since, Instant::now(), true));
    stop.send(true).expect("stop");
    let sent = load.await.expect("load");

    // Every answer is a 200 or the gateway's 502; none hung.
    for s in &sent {
        match &s.outcome {
            Ok((200, _)) => {}
            Ok((502, code)) => assert_eq!(code, "upstream_unavailable"),
            other => panic!("{}: unexpected {other:?}", s.id),
        }
    }
    // Within a phase (past a 50 ms settling margin), the answer is what the
    // upstream's state says: the node never hands out a pooled connection
    // the upstream closed, and fails fast while it is down.
    let settle = Duration::from_millis(50);
    let mut judged = [0usize; 2];
    for &(since, until, up) in &phases {
        for s in sent
            .iter()
            .filter(|s| s.start >= since + settle && s.end <= until)
        {
            let status = s.outcome.as_ref().map(|(status, _)| *status).ok();
            let expected = if up { 200 } else { 502 };
            assert_eq!(
                status,
                Some(expected),
                "{} while the upstream was {}: {:?}, sent {:?} into the phase, took {:?}",
                s.id,
                if up { "up" } else { "down" },
                s.outcome,
                s.start - since,
                s.end - s.start
            );
            judged[usize::from(up)] += 1;
        }
    }
    assert!(
        judged[0] > 0 && judged[1] > 0,
        "requests in both states: {judged:?}"
    );
    eprintln!(
        "flapping upstream: {} requests, {} judged while up, {} while down",
        sent.len(),
        judged[1],
        judged[0]
    );
    // Every failure was recorded, grouped into one event with a count.
    let refused = sent
        .iter()
        .filter(|s| matches!(s.outcome, Ok((502, _))))
        .count();
    eventually("the grouped error event", || async {
        let errors = tenant.send(reqwest::Method::GET, "/errors", None).await;
        let errors = errors.as_array().cloned().unwrap_or_default();
        let grouped: Vec<&Value> = errors
            .iter()
            .filter(|e| e["kind"] == "upstream_unavailable")
            .collect();
        grouped.len() == 1 && grouped[0]["occurrences"].as_u64() == Some(refused as u64)
    })
    .await;
    drop(running);
}

/// A client that sends a request's first line and then one header byte
/// every 200 ms, never finishing; how long until the node closed on it.
async fn slow_client(addr: &str) -> Duration {
    let started = Instant::now();
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream
        .write_all(b"GET /ok HTTP/1.1\r\nHost: slow\r\nX-Slow: ")
        .await
        .expect("write");
    let mut buf = [0u8; 256];
    let mut drip = tokio::time::interval(Duration::from_millis(200));
    loop {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "a slow client was never cut off"
        );
        tokio::select! {
            read = stream.read(&mut buf) => match read {
                Ok(0) | Err(_) => return started.elapsed(),
                Ok(n) => panic!("answered a request that never ended: {:?}", String::from_utf8_lossy(&buf[..n])),
            },
            _ = drip.tick() => {
                if stream.write_all(b"a").await.is_err() {
                    return started.elapsed();
                }
            }
        }
    }
}

/// Writes `head` (and nothing more) and reads the status line of the
/// answer; `None` when the connection closed without one.
async fn status_of_raw(addr: &str, head: &[u8]) -> Option<u16> {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    // A node that answers early may close before it all went out.
    let _ = stream.write_all(head).await;
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while !answer.windows(2).any(|w| w == b"\r\n") {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&answer).get(9..12)?.parse().ok()
}

/// The node's resident memory, in MiB.
fn rss_mib(node: &Node) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", node.process.child.id()))
        .expect("status");
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS");
    kib / 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn slow_and_oversized_clients() {
    let stage = Stage::new("slow-clients").await;
    let upstream = &stage.upstream;
    stage.tenant.route("ANY", "/*", &stage.service, false).await;
    let node = stage
        .node(&["--header-timeout-ms=1000", "--max-body-mb=1"])
        .await;
    let addr = node.base.trim_start_matches("http://").to_owned();
    let rss_before = rss_mib(&node);

    // 200 slowloris clients are cut off after the header timeout, while
    // everyone else is served.
    let slow: Vec<_> = (0..200)
        .map(|_| {
            let addr = addr.clone();
            tokio::spawn(async move { slow_client(&addr).await })
        })
        .collect();
    let http = reqwest::Client::new();
    for n in 0..20 {
        let response = http
            .get(format!("{}/ok/{n}", node.base))
            .send()
            .await
            .expect("sent");
        assert_eq!(response.status(), 200);
    }
    let mut longest = Duration::ZERO;
    for client in slow {
        longest = longest.max(client.await.expect("slow client"));
    }
    assert!(
        longest < Duration::from_secs(5),
        "slow clients held on for {longest:?}"
    );
    // (An idle keep-alive connection of the client above may be counted
    // too, once it has idled past the timeout.)
    let metrics = node.metrics().await;
    let closed: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("gatehouse_slow_clients_closed_total "))
        .and_then(|n| n.trim().parse().ok())
        .expect("the slow-client counter");
    assert!(closed >= 200, "{metrics}");

    // Oversized header blocks and too many headers: 400, nothing forwarded.
    let connections_before = upstream
        .connections
        .load(std::sync::atomic::Ordering::SeqCst);
    let huge = format!(
        "GET /ok HTTP/1.1\r\nHost: x\r\nX-Huge: {}\r\n\r\n",
        "a".repeat(1 << 21)
    );
    let many: String = (0..300).map(|i| format!("X-H{i}: v\r\n")).collect();
    let many = format!("GET /ok HTTP/1.1\r\nHost: x\r\n{many}\r\n");
    for _ in 0..10 {
        assert_eq!(status_of_raw(&addr, huge.as_bytes()).await, Some(400));
        assert_eq!(status_of_raw(&addr, many.as_bytes()).await, Some(400));
    }
    // A body declared over the limit: 413 before any of it is sent.
    let declared = "POST /count HTTP/1.1\r\nHost: x\r\nContent-Length: 2097152\r\n\r\n";
    let response = status_of_raw(&addr, declared.as_bytes()).await;
    assert_eq!(response, Some(413));
    assert_eq!(
        upstream
            .connections
            .load(std::sync::atomic::Ordering::SeqCst),
        connections_before,
        "nothing oversized reached the upstream"
    );
    // A chunked body that grows past the limit is cut: 413 (or the
    // connection dropped), never forwarded whole: the upstream reads at most
    // the limit of it.
    let read_before = upstream
        .body_bytes
        .load(std::sync::atomic::Ordering::SeqCst);
    let mut stream = TcpStream::connect(&addr).await.expect("connect");
    stream
        .write_all(b"POST /count HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        .await
        .expect("head");
    let chunk = format!("10000\r\n{}\r\n", "b".repeat(0x10000));
    for _ in 0..40 {
        if stream.write_all(chunk.as_bytes()).await.is_err() {
            break;
        }
    }
    let _ = stream.write_all(b"0\r\n\r\n").await;
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer).await;
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 413"),
        "{}",
        answer.lines().next().unwrap_or("")
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    let forwarded = upstream
        .body_bytes
        .load(std::sync::atomic::Ordering::SeqCst)
        - read_before;
    assert!(
        forwarded <= 1 << 20,
        "{forwarded} bytes of a 2.5 MiB chunked body reached the upstream past the 1 MiB limit"
    );
    // Under the limit, bodies pass.
    let response = http
        .post(format!("{}/count", node.base))
        .body(vec![b'c'; 1 << 19])
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["bytes"], 1 << 19);

    let rss_after = rss_mib(&node);
    eprintln!(
        "node RSS: {rss_before} MiB before, {rss_after} MiB after the slow and oversized clients"
    );
    assert!(
        rss_after < rss_before + 64,
        "memory grew from {rss_before} to {rss_after} MiB"
    );
}

/// Raises this process's open-file limit to at least `want` (children
/// inherit it); as root the hard limit can be raised too.
fn raise_open_files(want: u64) {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let current = getrlimit(Resource::Nofile);
    let hard = current.maximum.unwrap_or(u64::MAX);
    let target = Rlimit {
        current: Some(want),
        maximum: Some(hard.max(want)),
    };
    setrlimit(Resource::Nofile, target).unwrap_or_else(|err| {
        panic!("cannot raise the open-file limit to {want} (hard limit {hard}): {err}")
    });
}

/// Sends `GET path` on `stream` and reads the answer's status (the body is
/// read by its Content-Length, so the connection can be used again).
async fn request_on(stream: &mut BufReader<TcpStream>, path: &str) -> u16 {
    let request = format!("GET {path} HTTP/1.1\r\nHost: many\r\n\r\n");
    stream
        .get_mut()
        .write_all(request.as_bytes())
        .await
        .expect("write");
    let mut head = String::new();
    loop {
        let before = head.len();
        let n = stream.read_line(&mut head).await.expect("read");
        assert!(n > 0, "connection closed mid-answer");
        if head[before..].trim().is_empty() {
            break;
        }
    }
    let head = head.to_ascii_lowercase();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("a content-length");
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).await.expect("body");
    head.get(9..12)
        .and_then(|s| s.parse().ok())
        .expect("status")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_thousand_concurrent_connections() {
    const CONNECTIONS: usize = 10_000;
    raise_open_files(CONNECTIONS as u64 + 5_000);
    let stage = Stage::new("connections").await;
    stage
        .tenant
        .route("GET", "/many/*", &stage.service, false)
        .await;
    let node = stage.node(&["--header-timeout-ms=120000"]).await;
    let addr = node.base.trim_start_matches("http://").to_owned();
    let rss_before = rss_mib(&node);

    // Open them all; each is used once on the way (at most 256 requests in
    // flight), then held.
    let started = Instant::now();
    let permits = std::sync::Arc::new(tokio::sync::Semaphore::new(256));
    let mut streams = Vec::with_capacity(CONNECTIONS);
    let opening: Vec<_> = (0..CONNECTIONS)
        .map(|i| {
            let (addr, permits) = (addr.clone(), permits.clone());
            tokio::spawn(async move {
                let _permit = permits.acquire_owned().await.expect("permit");
                let tcp = TcpStream::connect(&addr).await.expect("connect");
                let mut stream = BufReader::new(tcp);
                let status = request_on(&mut stream, &format!("/many/{i}")).await;
                (stream, status)
            })
        })
        .collect();
    for handle in opening {
        let (stream, status) = handle.await.expect("connection");
        assert_eq!(status, 200);
        streams.push(stream);
    }
    let rss_open = rss_mib(&node);
    eprintln!(
        "{CONNECTIONS} connections opened and served in {:?}; node RSS {rss_before} -> {rss_open} MiB",
        started.elapsed()
    );
    // All of them still open at once: each serves a second request.
    let again: Vec<_> = streams
        .into_iter()
        .enumerate()
        .map(|(i, mut stream)| {
            let permits = permits.clone();
            tokio::spawn(async move {
                let _permit = permits.acquire_owned().await.expect("permit");
                request_on(&mut stream, &format!("/many/again/{i}")).await
            })
        })
        .collect();
    for handle in again {
        assert_eq!(handle.await.expect("request"), 200);
    }
    // And the node still answers anyone else.
    let response = reqwest::get(format!("{}/many/last", node.base))
        .await
        .expect("sent");
    assert_eq!(response.status(), 200);
    eprintln!(
        "{} requests on {CONNECTIONS} concurrent connections in {:?}",
        2 * CONNECTIONS,
        started.elapsed()
    );
}
