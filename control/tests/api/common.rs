//! Test harness: a real control plane on a loopback port, over a fresh
//! SQLite file or a fresh PostgreSQL database, and a small JSON client.

#![allow(dead_code)]

use std::path::PathBuf;

use clap::Parser;
use gatehouse_control::store::Store;
use gatehouse_control::{Control, ControlArgs};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

/// The JWT secret every test control plane signs with.
pub const JWT_SECRET: &str = "test-secret-test-secret-test-secret-0123";

/// Which database a test runs on.
#[derive(Debug, Clone, Copy)]
pub enum Db {
    Sqlite,
    Postgres,
}

use crate::throwaway_db::ThrowawayDb;

/// A running control plane with its own database and scratch folder.
pub struct Harness {
    pub control: Option<Control>,
    pub base: String,
    pub http: reqwest::Client,
    pub dir: PathBuf,
    pub args: ControlArgs,
    postgres_db: Option<ThrowawayDb>,
}

impl Harness {
    pub async fn start(db: Db) -> Self {
        Self::start_with(db, &[]).await
    }

    /// Starts with extra command-line flags.
    pub async fn start_with(db: Db, extra: &[&str]) -> Self {
        let dir = std::env::temp_dir().join(format!("gatehouse-test-{}", Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("scratch dir");
        let (database_url, postgres_db) = match db {
            Db::Sqlite => (format!("sqlite://{}/gatehouse.db", dir.display()), None),
            Db::Postgres => {
                let db = ThrowawayDb::create().await;
                (db.url.clone(), Some(db))
            }
        };
        let outbox = dir.join("outbox");
        let data = dir.join("data");
        let mut argv = vec![
            "control".to_owned(),
            "--listen=127.0.0.1:0".to_owned(),
            format!("--database-url={database_url}"),
            format!("--jwt-secret={JWT_SECRET}"),
            format!("--mail-outbox={}", outbox.display()),
            format!("--data-dir={}", data.display()),
        ];
        argv.extend(extra.iter().map(|s| (*s).to_owned()));
        let args = ControlArgs::try_parse_from(argv).expect("flags parse");
        let control = Control::start(&args).await.expect("control plane starts");
        let base = format!("http://{}", control.addr);
        Self {
            control: Some(control),
            base,
            http: reqwest::Client::new(),
            dir,
            args,
            postgres_db,
        }
    }

    pub fn store(&self) -> &Store {
        self.control.as_ref().expect("running").state.store()
    }

    pub fn outbox(&self) -> PathBuf {
        self.dir.join("outbox")
    }

    /// Stops the server and removes its database and scratch folder.
    pub async fn finish(mut self) {
        if let Some(control) = self.control.take() {
            control.stop().await.expect("clean stop");
        }
        if let Some(db) = self.postgres_db.take() {
            db.remove().await;
        }
        std::fs::remove_dir_all(&self.dir).ok();
    }

    /// Sends a request; `body` is sent as JSON when given.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        Reply::read(request.send().await.expect("request sent")).await
    }

    /// Sends `body` as is, with `content_type`.
    pub async fn call_raw(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        content_type: &str,
        body: impl Into<reqwest::Body>,
    ) -> Reply {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header("content-type", content_type)
            .body(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        Reply::read(request.send().await.expect("request sent")).await
    }

    pub async fn get(&self, path: &str, token: &str) -> Reply {
        self.call(Method::GET, path, Some(token), None).await
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> Reply {
        self.call(Method::POST, path, Some(token), Some(body)).await
    }

    pub async fn patch(&self, path: &str, token: &str, body: Value) -> Reply {
        self.call(Method::PATCH, path, Some(token), Some(body))
            .await
    }

    pub async fn delete(&self, path: &str, token: &str) -> Reply {
        self.call(Method::DELETE, path, Some(token), None).await
    }

    /// Registers a tenant with a unique email.
    pub async fn register(&self, name: &str) -> Tenant {
        let email = format!("{name}-{}@example.com", Uuid::new_v4().simple());
        let reply = self
            .call(
                Method::POST,
                "/api/auth/register",
                None,
                Some(json!({ "name": name, "email": email, "password": "s3cret-passw0rd" })),
            )
            .await;
        reply.expect(StatusCode::CREATED);
        Tenant {
            id: reply.str("tenantId"),
            token: reply.str("token"),
            gateway_key: reply.str("gatewayApiKey"),
            email,
            password: "s3cret-passw0rd".to_owned(),
        }
    }

    /// Creates a service of `tenant` and returns its id.
    pub async fn service(&self, tenant: &Tenant, name: &str) -> String {
        let reply = self
            .post(
                &tenant.path("/services"),
                &tenant.token,
                json!({ "name": name, "targetUrl": "http://127.0.0.1:9/api" }),
            )
            .await;
        reply.expect(StatusCode::CREATED);
        reply.str("id")
    }
}

impl Harness {
    /// Creates a key-protected `GET` route of `tenant` on `service` and
    /// returns its id.
    pub async fn route(&self, tenant: &Tenant, service: &str, pattern: &str) -> String {
        let body = json!({ "method": "GET", "pathPattern": pattern, "serviceId": service, "authRequired": true });
        let reply = self
            .post(&tenant.path("/routes"), &tenant.token, body)
            .await;
        reply.expect(StatusCode::CREATED);
        reply.str("id")
    }

    /// Creates a consumer of `tenant` and returns its id.
    pub async fn consumer(&self, tenant: &Tenant, name: &str) -> String {
        let reply = self
            .post(
                &tenant.path("/consumers"),
                &tenant.token,
                json!({ "name": name }),
            )
            .await;
        reply.expect(StatusCode::CREATED);
        reply.str("id")
    }
}

/// A registered tenant.
#[derive(Debug, Clone)]
pub struct Tenant {
    pub id: String,
    pub token: String,
    pub gateway_key: String,
    pub email: String,
    pub password: String,
}

impl Tenant {
    /// `/api/tenants/{id}{rest}`.
    pub fn path(&self, rest: &str) -> String {
        format!("/api/tenants/{}{rest}", self.id)
    }
}

/// A response, read whole.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Reply {
    pub async fn read(response: reqwest::Response) -> Self {
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.expect("body");
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Self {
            status,
            headers,
            body,
            text,
        }
    }

    /// Asserts the status, showing the body when it differs.
    pub fn expect(&self, status: StatusCode) -> &Self {
        assert_eq!(
            self.status, status,
            "unexpected status; body: {}",
            self.text
        );
        self
    }

    /// Asserts an error reply with this status and code (and the error JSON).
    pub fn expect_error(&self, status: StatusCode, code: &str) -> &Self {
        self.expect(status);
        assert_eq!(self.body["error"]["code"], code, "body: {}", self.text);
        assert!(
            self.body["error"]["message"].is_string(),
            "body: {}",
            self.text
        );
        self
    }

    pub fn str(&self, field: &str) -> String {
        self.body[field]
            .as_str()
            .unwrap_or_else(|| panic!("`{field}` is not a string in {}", self.text))
            .to_owned()
    }

    pub fn list(&self) -> &Vec<Value> {
        self.body
            .as_array()
            .unwrap_or_else(|| panic!("not a list: {}", self.text))
    }
}

/// Defines `mod sqlite` and `mod postgres`, each running every listed test
/// against its database.
#[macro_export]
macro_rules! on_both_databases {
    ($($test:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test($crate::common::Db::Sqlite).await;
                }
            )+
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test($crate::common::Db::Postgres).await;
                }
            )+
        }
    };
}
