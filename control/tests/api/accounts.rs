//! Register, login (and its throttling, per client behind trusted proxies
//! and across replicas), forgot-password and reset-password (which revokes
//! earlier tokens).

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::common::{Db, Harness};
use crate::on_both_databases;

on_both_databases!(
    register_and_login,
    registration_is_validated,
    login_failures_are_throttled,
    login_failures_are_throttled_per_ip,
    password_reset_round_trip,
    expired_reset_tokens_are_refused,
    throttles_see_the_client_behind_a_trusted_proxy,
    a_throttled_client_cannot_lock_out_an_email,
    throttles_hold_across_replicas,
);

async fn register_and_login(db: Db) {
    let h = Harness::start(db).await;
    let tenant = h.register("acme").await;
    assert!(
        tenant.gateway_key.starts_with("gk_"),
        "{}",
        tenant.gateway_key
    );
    assert!(tenant.gateway_key.len() >= 3 + 22, "at least 128 bits");

    // The token works on the tenant's own endpoints.
    h.get(&tenant.path("/routes"), &tenant.token)
        .await
        .expect(StatusCode::OK);

    // Same email, other case: taken.
    let reply = h
        .call(Method::POST, "/api/auth/register", None,
            Some(json!({ "name": "again", "email": tenant.email.to_uppercase(), "password": "another-password" })))
        .await;
    reply.expect_error(StatusCode::CONFLICT, "email_taken");

    let login = h
        .call(
            Method::POST,
            "/api/auth/login",
            None,
            Some(json!({ "email": tenant.email, "password": tenant.password })),
        )
        .await;
    login.expect(StatusCode::OK);
    assert_eq!(login.str("tenantId"), tenant.id);
    h.get(&tenant.path("/routes"), &login.str("token"))
        .await
        .expect(StatusCode::OK);

    for (email, password) in [
        (tenant.email.as_str(), "wrong-password"),
        ("nobody@example.com", "whatever-pass"),
    ] {
        h.call(
            Method::POST,
            "/api/auth/login",
            None,
            Some(json!({ "email": email, "password": password })),
        )
        .await
        .expect_error(StatusCode::UNAUTHORIZED, "invalid_credentials");
    }

    // The password is stored as an argon2id hash, never in clear.
    let (hash,): (String,) = sqlx::query_as("SELECT password_hash FROM tenants WHERE id = $1")
        .bind(&tenant.id)
        .fetch_one(h.store().pool())
        .await
        .expect("row");
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    let (key_hash,): (String,) =
        sqlx::query_as("SELECT gateway_key_hash FROM tenants WHERE id = $1")
            .bind(&tenant.id)
            .fetch_one(h.store().pool())
            .await
            .expect("row");
    assert_eq!(
        key_hash,
        gatehouse_control::secrets::sha256_hex(&tenant.gateway_key)
    );
    h.finish().await;
}

async fn registration_is_validated(db: Db) {
    let h = Harness::start(db).await;
    let cases = [
        (
            json!({ "name": "a", "email": "not-an-email", "password": "long-enough" }),
            "email",
        ),
        (
            json!({ "name": "a", "email": "a@example.com", "password": "short" }),
            "password",
        ),
        (
            json!({ "name": "  ", "email": "a@example.com", "password": "long-enough" }),
            "name",
        ),
    ];
    for (body, field) in cases {
        let reply = h
            .call(Method::POST, "/api/auth/register", None, Some(body))
            .await;
        reply.expect_error(StatusCode::BAD_REQUEST, "validation_failed");
        assert_eq!(reply.body["error"]["field"], field);
    }
    // Missing field, wrong type, unknown field.
    for body in [
        json!({ "name": "a", "email": "a@example.com" }),
        json!({ "name": 5, "email": "a@example.com", "password": "long-enough" }),
        json!({ "name": "a", "email": "a@example.com", "password": "long-enough", "admin": true }),
    ] {
        h.call(Method::POST, "/api/auth/register", None, Some(body))
            .await
            .expect_error(StatusCode::BAD_REQUEST, "validation_failed");
    }
    h.finish().await;
}

async fn login_failures_are_throttled(db: Db) {
    let h = Harness::start(db).await;
    let tenant = h.register("throttled").await;
    let attempt = |password: &'static str| {
        let email = tenant.email.clone();
        let h = &h;
        async move {
            h.call(
                Method::POST,
                "/api/auth/login",
                None,
                Some(json!({ "email": email, "password": password })),
            )
            .await
        }
    };
    for _ in 0..gatehouse_control::server::LOGIN_FAILURES_PER_EMAIL {
        attempt("wrong-password")
            .await
            .expect(StatusCode::UNAUTHORIZED);
    }
    // Now even the right password is refused until the window ends.
    let reply = attempt("s3cret-passw0rd").await;
    reply.expect_error(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    let retry: u64 = reply.headers["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!(retry > 0 && retry <= 15 * 60, "{retry}");
    h.finish().await;
}

async fn login_failures_are_throttled_per_ip(db: Db) {
    let h = Harness::start(db).await;
    let tenant = h.register("ip-throttled").await;
    // Many accounts guessed from one address.
    for i in 0..gatehouse_control::server::LOGIN_FAILURES_PER_IP {
        h.call(
            Method::POST,
            "/api/auth/login",
            None,
            Some(
                json!({ "email": format!("guess-{i}@example.com"), "password": "wrong-password" }),
            ),
        )
        .await
        .expect(StatusCode::UNAUTHORIZED);
    }
    // The address is refused, even for a real account with its real password.
    h.call(
        Method::POST,
        "/api/auth/login",
        None,
        Some(json!({ "email": tenant.email, "password": tenant.password })),
    )
    .await
    .expect_error(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    h.finish().await;
}

async fn password_reset_round_trip(db: Db) {
    let h = Harness::start(db).await;
    let tenant = h.register("forgetful").await;

    // Unknown emails get the same answer and no mail.
    let unknown = h
        .call(
            Method::POST,
            "/api/auth/forgot-password",
            None,
            Some(json!({ "email": "ghost@example.com" })),
        )
        .await;
    unknown.expect(StatusCode::OK);
    let known = h
        .call(
            Method::POST,
            "/api/auth/forgot-password",
            None,
            Some(json!({ "email": tenant.email })),
        )
        .await;
    known.expect(StatusCode::OK);
    assert_eq!(unknown.body, known.body);

    let mail = wait_for_mail(&h).await;
    assert!(mail.contains(&format!("To: {}", tenant.email)), "{mail}");
    let token = reset_token_in(&mail);
    // The link opens the console's reset page at the control plane's own
    // address, the token in the fragment (no server sees it).
    let unfolded = mail.replace("=\r\n", "").replace("=3D", "=");
    assert!(
        unfolded.contains(&format!("{}/reset-password#token={token}", h.base)),
        "{mail}"
    );
    let mails = std::fs::read_dir(h.outbox()).expect("outbox").count();
    assert_eq!(mails, 1, "exactly one mail: none for the unknown email");

    // The token is stored hashed only.
    let (stored,): (String,) =
        sqlx::query_as("SELECT token_hash FROM password_resets WHERE tenant_id = $1")
            .bind(&tenant.id)
            .fetch_one(h.store().pool())
            .await
            .expect("row");
    assert_eq!(stored, gatehouse_control::secrets::sha256_hex(&token));

    let reset = |token: String, password: &'static str| {
        let h = &h;
        async move {
            h.call(
                Method::POST,
                "/api/auth/reset-password",
                None,
                Some(json!({ "token": token, "password": password })),
            )
            .await
        }
    };
    reset("not-a-real-token".to_owned(), "brand-new-password")
        .await
        .expect_error(StatusCode::BAD_REQUEST, "validation_failed");
    reset(token.clone(), "short")
        .await
        .expect_error(StatusCode::BAD_REQUEST, "validation_failed");
    reset(token.clone(), "brand-new-password")
        .await
        .expect(StatusCode::OK);
    // Single use.
    reset(token, "another-new-password")
        .await
        .expect_error(StatusCode::BAD_REQUEST, "validation_failed");

    let login = |password: &'static str| {
        let h = &h;
        let email = tenant.email.clone();
        async move {
            h.call(
                Method::POST,
                "/api/auth/login",
                None,
                Some(json!({ "email": email, "password": password })),
            )
            .await
        }
    };
    login("s3cret-passw0rd")
        .await
        .expect(StatusCode::UNAUTHORIZED);
    let fresh = login("brand-new-password").await;
    fresh.expect(StatusCode::OK);
    // Tokens issued before the reset are refused at once; a new login's work.
    h.get(&tenant.path("/routes"), &tenant.token)
        .await
        .expect_error(StatusCode::UNAUTHORIZED, "token_revoked");
    h.get(&tenant.path("/routes"), &fresh.str("token"))
        .await
        .expect(StatusCode::OK);
    h.finish().await;
}

/// A login as a load balancer forwards it for the client `forwarded_for`.
async fn login_from(h: &Harness, forwarded_for: &str, email: String, password: &str) -> StatusCode {
    let request = h
        .http
        .post(format!("{}/api/auth/login", h.base))
        .header("x-forwarded-for", forwarded_for)
        .json(&json!({ "email": email, "password": password }));
    request.send().await.expect("sent").status()
}

/// Behind a trusted load balancer each client is throttled on its own
/// address (from X-Forwarded-For); the header of an untrusted peer is
/// ignored, so a client cannot dodge the throttle by forging it.
async fn throttles_see_the_client_behind_a_trusted_proxy(db: Db) {
    let h = Harness::start_with(db, &["--trusted-proxies=127.0.0.0/8"]).await;
    let tenant = h.register("behind-lb").await;
    for i in 0..gatehouse_control::server::LOGIN_FAILURES_PER_IP {
        let status = login_from(
            &h,
            "203.0.113.1",
            format!("guess-{i}@example.com"),
            "wrong-password",
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(
        login_from(&h, "203.0.113.1", tenant.email.clone(), "s3cret-passw0rd").await,
        StatusCode::TOO_MANY_REQUESTS,
        "the guessing client is throttled"
    );
    assert_eq!(
        login_from(&h, "203.0.113.2", tenant.email.clone(), "s3cret-passw0rd").await,
        StatusCode::OK,
        "another client behind the same load balancer is not"
    );
    h.finish().await;

    let h = Harness::start(db).await;
    let tenant = h.register("no-lb").await;
    for i in 0..gatehouse_control::server::LOGIN_FAILURES_PER_IP {
        let forged: &'static str = if i % 2 == 0 {
            "198.51.100.1"
        } else {
            "198.51.100.2"
        };
        let status = login_from(
            &h,
            forged,
            format!("guess-{i}@example.com"),
            "wrong-password",
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(
        login_from(&h, "198.51.100.3", tenant.email.clone(), "s3cret-passw0rd").await,
        StatusCode::TOO_MANY_REQUESTS,
        "a forged X-Forwarded-For from an untrusted peer changes nothing"
    );
    h.finish().await;
}

/// Once a client's address is refused, its further guesses are not counted
/// against the email it names: the account's owner, elsewhere, still logs in.
async fn a_throttled_client_cannot_lock_out_an_email(db: Db) {
    let h = Harness::start_with(db, &["--trusted-proxies=127.0.0.0/8"]).await;
    let victim = h.register("victim").await;
    for i in 0..gatehouse_control::server::LOGIN_FAILURES_PER_IP {
        let guess = format!("guess-{i}@example.com");
        let status = login_from(&h, "203.0.113.9", guess, "wrong-password").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    for _ in 0..2 * gatehouse_control::server::LOGIN_FAILURES_PER_EMAIL {
        let status = login_from(&h, "203.0.113.9", victim.email.clone(), "wrong-password").await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    }
    assert_eq!(
        login_from(&h, "203.0.113.10", victim.email.clone(), &victim.password).await,
        StatusCode::OK,
        "the refused client's guesses did not lock the victim's email"
    );
    h.finish().await;
}

/// Failures counted by one replica lock the email on every replica.
async fn throttles_hold_across_replicas(db: Db) {
    if !matches!(db, Db::Postgres) {
        return;
    }
    let h = Harness::start(db).await;
    let tenant = h.register("replicated").await;
    let replica = gatehouse_control::Control::start(&h.args)
        .await
        .expect("second replica");
    for _ in 0..gatehouse_control::server::LOGIN_FAILURES_PER_EMAIL {
        h.call(
            Method::POST,
            "/api/auth/login",
            None,
            Some(json!({ "email": tenant.email, "password": "wrong-password" })),
        )
        .await
        .expect(StatusCode::UNAUTHORIZED);
    }
    let status = h
        .http
        .post(format!("http://{}/api/auth/login", replica.addr))
        .json(&json!({ "email": tenant.email, "password": tenant.password }))
        .send()
        .await
        .expect("sent")
        .status();
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    replica.stop().await.expect("stops");
    h.finish().await;
}

async fn expired_reset_tokens_are_refused(db: Db) {
    let h = Harness::start(db).await;
    let tenant = h.register("late").await;
    h.call(
        Method::POST,
        "/api/auth/forgot-password",
        None,
        Some(json!({ "email": tenant.email })),
    )
    .await
    .expect(StatusCode::OK);
    let token = reset_token_in(&wait_for_mail(&h).await);
    // An hour and a bit later.
    sqlx::query("UPDATE password_resets SET expires_at = expires_at - $1")
        .bind(gatehouse_control::accounts::RESET_TOKEN_TTL_MS + 1000)
        .execute(h.store().pool())
        .await
        .expect("age the token");
    h.call(
        Method::POST,
        "/api/auth/reset-password",
        None,
        Some(json!({ "token": token, "password": "brand-new-password" })),
    )
    .await
    .expect_error(StatusCode::BAD_REQUEST, "validation_failed");
    h.finish().await;
}

/// The first mail in the outbox, waiting for it to be written.
pub async fn wait_for_mail(h: &Harness) -> String {
    for _ in 0..100 {
        if let Some(entry) = std::fs::read_dir(h.outbox())
            .ok()
            .and_then(|mut d| d.next())
        {
            let text = std::fs::read_to_string(entry.expect("entry").path()).expect("mail");
            if text.contains("reset token") {
                return text;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no mail in {}", h.outbox().display());
}

/// The indented token line of a reset mail (not the link's line).
pub fn reset_token_in(mail: &str) -> String {
    mail.lines()
        .find(|line| line.starts_with("    ") && !line.trim().is_empty() && !line.contains("://"))
        .map(|line| line.trim().to_owned())
        .unwrap_or_else(|| panic!("no token in {mail}"))
}

/// With `--smtp-url`, the reset mail goes through SMTP (here a mock SMTP
/// server: mail delivery is outside the product).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_mail_goes_through_smtp_when_configured() {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let (sent, received) = tokio::sync::oneshot::channel::<String>();
    let mut sent = Some(sent);
    tokio::spawn(async move {
        let (socket, _) = listener.accept().await.expect("accept");
        let (read, mut write) = socket.into_split();
        let mut lines = BufReader::new(read).lines();
        write.write_all(b"220 mock ESMTP\r\n").await.expect("greet");
        let mut data = String::new();
        let mut in_data = false;
        while let Ok(Some(line)) = lines.next_line().await {
            if in_data {
                if line == "." {
                    in_data = false;
                    write.write_all(b"250 queued\r\n").await.expect("queued");
                    if let Some(sent) = sent.take() {
                        sent.send(std::mem::take(&mut data)).ok();
                    }
                } else {
                    data.push_str(&line);
                    data.push('\n');
                }
                continue;
            }
            let verb = line
                .split_whitespace()
                .next()
                .unwrap_or("")
                .to_ascii_uppercase();
            let answer: &[u8] = match verb.as_str() {
                "EHLO" | "HELO" => b"250 mock\r\n",
                "DATA" => {
                    in_data = true;
                    b"354 go ahead\r\n"
                }
                "QUIT" => {
                    write.write_all(b"221 bye\r\n").await.ok();
                    break;
                }
                _ => b"250 ok\r\n",
            };
            write.write_all(answer).await.expect("answer");
        }
    });

    let smtp = format!("--smtp-url=smtp://127.0.0.1:{port}");
    let h = Harness::start_with(Db::Sqlite, &[&smtp]).await;
    let tenant = h.register("mailed").await;
    h.call(
        Method::POST,
        "/api/auth/forgot-password",
        None,
        Some(json!({ "email": tenant.email })),
    )
    .await
    .expect(StatusCode::OK);
    let mail = tokio::time::timeout(Duration::from_secs(10), received)
        .await
        .expect("mail within 10 s")
        .expect("mail");
    assert!(mail.contains(&format!("To: {}", tenant.email)), "{mail}");
    let token = reset_token_in(&mail);
    h.call(
        Method::POST,
        "/api/auth/reset-password",
        None,
        Some(json!({ "token": token, "password": "via-smtp-password" })),
    )
    .await
    .expect(StatusCode::OK);
    assert!(!h.outbox().exists() || std::fs::read_dir(h.outbox()).expect("dir").count() == 0);
    h.finish().await;
}
