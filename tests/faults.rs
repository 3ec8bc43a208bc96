//! Faults under the real binaries: the control plane's PostgreSQL stopped
//! and started again underneath it. Meanwhile the API answers 503
//! `database_unavailable` with the error JSON (never a 500, never a hang);
//! afterwards it serves again without a restart, and nothing written before
//! is lost; a node connected throughout gets the first change made after
//! the restart within a heartbeat.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use support::{ControlPlane, Node, Scratch, Tenant};

/// A throwaway PostgreSQL server of Debian's packages on its own socket and
/// data dir (run as the `postgres` user when the tests run as root, as
/// PostgreSQL refuses root).
struct PrivatePostgres {
    bin: PathBuf,
    data: PathBuf,
    /// Where its Unix socket is: it listens on no TCP port.
    socket_dir: PathBuf,
    server: Option<Child>,
}

fn postgres_bin() -> PathBuf {
    let versions = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL's server packages (scripts/test-services.sh installs them)");
    let mut bins: Vec<PathBuf> = versions
        .filter_map(|v| Some(v.ok()?.path().join("bin")))
        .filter(|bin| bin.join("initdb").exists())
        .collect();
    bins.sort();
    bins.pop()
        .expect("an initdb under /usr/lib/postgresql/*/bin")
}

fn as_postgres_user(program: &Path) -> Command {
    if rustix::process::geteuid().is_root() {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(program);
        command
    } else {
        Command::new(program)
    }
}

impl PrivatePostgres {
    fn init(dir: &Path) -> Self {
        let data = dir.join("pgdata");
        std::fs::create_dir_all(&data).expect("data dir");
        if rustix::process::geteuid().is_root() {
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir)
                .status()
                .expect("chown runs");
            assert!(status.success(), "chown to postgres");
        }
        let bin = postgres_bin();
        let status = as_postgres_user(&bin.join("initdb"))
            .args(["-A", "trust", "-U", "postgres", "-D"])
            .arg(&data)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("initdb runs");
        assert!(status.success(), "initdb");
        let mut postgres = Self {
            bin,
            data,
            socket_dir: dir.to_owned(),
            server: None,
        };
        postgres.start();
        postgres
    }

    fn url(&self) -> String {
        format!(
            "postgres://postgres@localhost/postgres?host={}",
            self.socket_dir.display()
        )
    }

    fn start(&mut self) {
        let child = as_postgres_user(&self.bin.join("postgres"))
            .arg("-D")
            .arg(&self.data)
            .args(["-c", "listen_addresses=", "-c"])
            .arg(format!(
                "unix_socket_directories={}",
                self.socket_dir.display()
            ))
            .args(["-c", "fsync=off"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("postgres starts");
        self.server = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = Command::new(self.bin.join("pg_isready"))
                .arg("-h")
                .arg(&self.socket_dir)
                .stdout(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if ready {
                return;
            }
            assert!(Instant::now() < deadline, "postgres never got ready");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// A fast shutdown: SIGINT to the postmaster (its pid from
    /// `postmaster.pid`: the child may be `runuser`, which does not pass
    /// signals on), waiting until it is gone.
    fn stop(&mut self) {
        let Some(mut child) = self.server.take() else {
            return;
        };
        let postmaster = std::fs::read_to_string(self.data.join("postmaster.pid"))
            .ok()
            .and_then(|text| text.lines().next()?.trim().parse::<i32>().ok())
            .and_then(rustix::process::Pid::from_raw)
            .unwrap_or_else(|| rustix::process::Pid::from_child(&child));
        rustix::process::kill_process(postmaster, rustix::process::Signal::INT).ok();
        child.wait().ok();
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Creates a service named `name`.
async fn add_service(tenant: &Tenant, name: &str) -> (StatusCode, Value) {
    let body = json!({ "name": name, "targetUrl": "http://127.0.0.1:9/" });
    tenant.call(Method::POST, "/services", Some(body)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restarted_under_the_control_plane() {
    let scratch = Scratch::new("fault-postgres");
    let mut postgres = PrivatePostgres::init(&scratch.0);
    let control = ControlPlane::start_on(&scratch.0, &postgres.url()).await;
    let tenant = Tenant::register(&control.base).await;
    let (status, service) = add_service(&tenant, "before").await;
    assert_eq!(status, StatusCode::CREATED, "{service}");
    let node = Node::start_for(&scratch.0, &control, &tenant).await;
    let http = reqwest::Client::new();
    let after = format!("{}/after", node.base);
    let served = |url: String| {
        let http = http.clone();
        async move {
            http.get(url).send().await.expect("node answers").status() != StatusCode::NOT_FOUND
        }
    };
    assert!(!served(after).await);
    // That request's log is stored before the outage: a batch the database
    // cannot store ends the node's link (it is sent again after), and this
    // test shows that nothing else does.
    let deadline = Instant::now() + Duration::from_secs(10);
    while tenant.all_logs("").await.is_empty() {
        assert!(Instant::now() < deadline, "the request's log never arrived");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    postgres.stop();
    let started = Instant::now();
    for (method, path, body) in [
        (Method::GET, "/services", None),
        (Method::GET, "/routes", None),
        (
            Method::POST,
            "/services",
            Some(json!({ "name": "during", "targetUrl": "http://127.0.0.1:9/" })),
        ),
    ] {
        let (status, body) = tenant.call(method.clone(), path, body).await;
        assert_eq!(
            status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{method} {path}: {body}"
        );
        assert_eq!(body["error"]["code"], "database_unavailable", "{body}");
        assert!(body["error"]["message"].is_string(), "{body}");
    }
    assert!(
        started.elapsed() < Duration::from_secs(25),
        "answered within the pool's acquire timeout, not hung"
    );

    postgres.start();
    // Serves again without a restart (the pool replaces its dead
    // connections), with what was written before.
    let deadline = Instant::now() + Duration::from_secs(20);
    let services = loop {
        let (status, body) = tenant.call(Method::GET, "/services", None).await;
        if status == StatusCode::OK {
            break body;
        }
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        assert!(Instant::now() < deadline, "the API never recovered: {body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let names = support::names(&services);
    assert_eq!(names, ["before"], "nothing lost, nothing half-written");
    let (status, body) = add_service(&tenant, "after").await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let service = body["id"].as_str().expect("id").to_owned();
    // Every change made after the restart reaches the node.
    let mut took = Vec::new();
    for n in 0..5 {
        let path = if n == 0 {
            "/after".to_owned()
        } else {
            format!("/after-{n}")
        };
        let started = Instant::now();
        tenant.route("GET", &path, &service, false).await;
        while !served(format!("{}{path}", node.base)).await {
            assert!(
                started.elapsed() < Duration::from_secs(6),
                "change {n} never reached the node"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        took.push(started.elapsed());
    }
    eprintln!(
        "{} of 5 changes after the PostgreSQL restart live on the node, in {took:?}",
        took.len()
    );
    node.process.terminate();
    // The node's link to the control plane held through the outage.
    let node_logs: String = std::fs::read_dir(&scratch.0)
        .expect("scratch")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("proxy-"))
        .filter_map(|e| std::fs::read_to_string(e.path()).ok())
        .collect();
    assert_eq!(
        node_logs.matches("connected to the control plane").count(),
        1,
        "the node reconnected during the outage:\n{node_logs}"
    );
    control.process.terminate();
}
