//! The binary's contract at start-up: a flag that cannot be used stops it
//! with one clear line naming the flag, and a non-zero exit.

use std::process::Command;

fn run(args: &[&str]) -> (i32, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .args(args)
        .env_remove("GATEHOUSE_GATEWAY_KEY")
        .env_remove("GATEHOUSE_JWT_SECRET")
        .output()
        .expect("gatehouse runs");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn bad_flags_name_themselves() {
    let dir = std::env::temp_dir().join(format!("gatehouse-cli-{}", std::process::id()));
    let state = format!("--state-dir={}", dir.display());
    let missing = dir.join("missing.pem");
    let missing = missing.to_str().expect("utf-8");
    let cases: [(&[&str], &str); 7] = [
        (
            &["proxy", "--gateway-key", "not-a-key", &state],
            "--gateway-key",
        ),
        (
            &[
                "proxy",
                "--gateway-key",
                "gk_x",
                "--control-url",
                "ftp://x",
                &state,
            ],
            "--control-url",
        ),
        (
            &[
                "proxy",
                "--gateway-key",
                "gk_x",
                "--listen",
                "nowhere",
                &state,
            ],
            "--listen",
        ),
        (
            &["proxy", "--gateway-key", "gk_x", "--threads", "0", &state],
            "--threads",
        ),
        (
            &[
                "proxy",
                "--gateway-key",
                "gk_x",
                "--tls-listen",
                "127.0.0.1:0",
                "--tls-cert",
                missing,
                "--tls-key",
                missing,
                &state,
            ],
            "--tls-cert",
        ),
        (
            &[
                "proxy",
                "--gateway-key",
                "gk_x",
                "--upstream-ca-file",
                missing,
                &state,
            ],
            "--upstream-ca-file",
        ),
        (
            &[
                "control",
                "--jwt-secret",
                "short",
                "--database-url",
                "sqlite::memory:",
            ],
            "--jwt-secret",
        ),
    ];
    for (args, flag) in cases {
        let (code, stderr) = run(args);
        assert_ne!(code, 0, "{args:?} should fail");
        let last = stderr.lines().last().unwrap_or("");
        assert!(
            last.starts_with("gatehouse: ") && last.contains(flag),
            "{args:?}: {stderr}"
        );
    }
    let data = format!("--data-dir={}", dir.display());
    let outbox = format!("--mail-outbox={}/outbox", dir.display());
    let (code, stderr) = run(&["control", "--database-url", "mysql://nope", &data, &outbox]);
    assert_ne!(code, 0);
    assert!(stderr.contains("--database-url"), "{stderr}");
    std::fs::remove_dir_all(dir).ok();
}
