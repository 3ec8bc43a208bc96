//! A plugin for the host's tests. Its route config `{"mode": "..."}` picks
//! what `on-request` does: `header` (set `x-testbed: <value>`), `deny`
//! (answer 403), `loop` (never return), `hog` (allocate without bound),
//! `panic` (trap), `consumer` (identify the consumer of the `x-api-key`
//! header through the host); `token` (identify the consumer whose id the
//! `x-partner-token` header names, as a plugin checking tokens of its own
//! does, through the host); `garbage` (answer with headers no gateway may
//! forward: a spoofed `x-consumer-id`, a name with a space, a value with a
//! line break); `log-panic` proceeds, then traps in `on-log`; `log-forge`
//! writes a log message holding a line break and a forged node log line,
//! and one of 2,000 two-byte characters, then proceeds (and writes a line
//! in `on-response` and in `on-log`). The store modes use the plugin's own
//! `counters` and `kv`: `state` counts its requests in the counter `hits`
//! and keeps the last path in the key `last` (`x-hits`, `x-last`); `fill`
//! stores 16 KiB values until the store refuses one (`x-kv-stored`, the
//! refusal in `x-kv-refusal`, the usage in `x-kv-entries` and
//! `x-kv-bytes`, a 65 KiB value's refusal in `x-kv-oversized`); `expiring`
//! says whether the key `t` is there (`x-kv-t`), setting it for three
//! seconds when it is not. `residue` looks for what an earlier call left
//! behind in this instance, then leaves some itself: a call counter in a
//! static (`x-calls`), a 1.25 MiB static buffer written with a pattern,
//! and a 256 KiB heap block written with it whose address it keeps
//! (`x-residue`: `clean` when none of them is there, else what was found). `tag` proceeds with the response headers
//! `x-tagged: yes` and `content-type: text/x-tagged` (`response-headers`); `rate-32` checks a rate 32 times
//! and proceeds, `rate-loop` checks one more time than that.

wit_bindgen::generate!({ world: "plugin", path: "../../wit" });

use gatehouse::plugin::types::{Header, Hooks, LocalResponse, RequestChanges, ResponseChanges};
use gatehouse::plugin::{config, consumers, counters, kv, log};
use std::sync::atomic::{AtomicU32, AtomicU8, AtomicUsize, Ordering};

struct Testbed;

fn mode() -> String {
    let json = config::get_json();
    // A tiny extraction, to keep the guest free of a JSON dependency.
    json.split("\"mode\"")
        .nth(1)
        .and_then(|rest| rest.split('"').nth(1))
        .unwrap_or("header")
        .to_owned()
}

impl Guest for Testbed {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "testbed".into(),
            version: "0.1.0".into(),
            hooks: Hooks::ON_REQUEST | Hooks::ON_RESPONSE | Hooks::ON_LOG,
        }
    }

    fn on_request(request: Request) -> RequestAction {
        let proceed = |set_headers, consumer_id| {
            RequestAction::Proceed(RequestChanges {
                set_headers,
                remove_headers: vec![],
                rewrite_path: None,
                consumer_id,
                response_headers: vec![],
            })
        };
        let check_rates = |times| {
            for _ in 0..times {
                counters::check_rate("loop", 1_000_000);
            }
            proceed(vec![], None)
        };
        match mode().as_str() {
            "tag" => RequestAction::Proceed(RequestChanges {
                set_headers: vec![],
                remove_headers: vec![],
                rewrite_path: None,
                consumer_id: None,
                response_headers: vec![header("x-tagged", "yes"), header("content-type", "text/x-tagged")],
            }),
            "rate-32" => check_rates(32),
            "rate-loop" => check_rates(33),
            "deny" => RequestAction::Respond(LocalResponse {
                status: 403,
                headers: vec![Header { name: "content-type".into(), value: "text/plain".into() }],
                body: b"denied by testbed".to_vec(),
            }),
            "loop" => {
                let mut n: u64 = 0;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            "hog" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1u8; 1 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            "panic" => panic!("testbed panics on purpose"),
            "garbage" => proceed(
                vec![
                    Header { name: "x-consumer-id".into(), value: "spoofed".into() },
                    Header { name: "bad name".into(), value: "v".into() },
                    Header { name: "x-split".into(), value: "a\r\ninjected: 1".into() },
                ],
                None,
            ),
            "token" => {
                let token = request.headers.iter().find(|h| h.name == "x-partner-token");
                let consumer = token.and_then(|t| consumers::by_id(&t.value));
                proceed(vec![], consumer.map(|c| c.id))
            }
            "consumer" => {
                let key = request.headers.iter().find(|h| h.name == "x-api-key").map(|h| h.value.clone());
                let consumer = key.and_then(|key| consumers::by_key(&key));
                log::write(log::Level::Info, &format!("consumer found: {}", consumer.is_some()));
                proceed(vec![], consumer.map(|c| c.id))
            }
            "log-forge" => {
                log::write(
                    log::Level::Warn,
                    "testbed-forge\n2026-01-01T00:00:00.000000Z ERROR gatehouse_proxy::sync: forged by a plugin",
                );
                log::write(log::Level::Info, &"é".repeat(2000));
                proceed(vec![], None)
            }
            "state" => proceed(state(&request.path), None),
            "fill" => proceed(fill(), None),
            "expiring" => proceed(expiring(), None),
            "residue" => proceed(residue(), None),
            _ => proceed(
                vec![Header { name: "x-testbed".into(), value: format!("{} {}", request.method, request.path) }],
                None,
            ),
        }
    }

    fn on_response(_request: Request, _response: Response) -> ResponseAction {
        if mode() == "log-forge" {
            log::write(log::Level::Info, "testbed-on-response");
        }
        ResponseAction::Modify(ResponseChanges {
            set_headers: vec![Header { name: "x-testbed-response".into(), value: "seen".into() }],
            remove_headers: vec![],
        })
    }

    fn on_log(_entry: LogEntry) {
        match mode().as_str() {
            "log-panic" => panic!("testbed panics in on-log on purpose"),
            "log-forge" => log::write(log::Level::Info, "testbed-on-log"),
            _ => {}
        }
    }
}

fn header(name: &str, value: impl ToString) -> Header {
    Header { name: name.into(), value: value.to_string() }
}

fn kv_error(err: kv::KvError) -> &'static str {
    match err {
        kv::KvError::Full => "full",
        kv::KvError::TooLarge => "too-large",
    }
}

fn state(path: &str) -> Vec<Header> {
    let hits = match counters::increment("hits", 1, None) {
        Ok(hits) => hits.to_string(),
        Err(_) => "refused".into(),
    };
    let last = kv::get("last").map_or_else(|| "-".into(), |v| String::from_utf8_lossy(&v).into_owned());
    let _ = kv::set("last", path.as_bytes(), None);
    vec![header("x-hits", hits), header("x-last", last)]
}

fn fill() -> Vec<Header> {
    let value = vec![7u8; 16 << 10];
    let mut stored = 0u32;
    let refusal = loop {
        match kv::set(&format!("fill-{stored}"), &value, None) {
            Ok(()) => stored += 1,
            Err(err) => break kv_error(err),
        }
    };
    let usage = kv::usage();
    let oversized = kv::set("big", &vec![0u8; 65 << 10], None).map_or_else(kv_error, |()| "stored");
    vec![
        header("x-kv-stored", stored),
        header("x-kv-refusal", refusal),
        header("x-kv-entries", usage.entries),
        header("x-kv-bytes", usage.bytes),
        header("x-kv-oversized", oversized),
    ]
}

fn expiring() -> Vec<Header> {
    let there = kv::get("t").is_some();
    if !there {
        let _ = kv::set("t", b"x", Some(3));
    }
    vec![header("x-kv-t", if there { "present" } else { "absent" })]
}

/// Calls of `residue` this instance has seen.
static CALLS: AtomicU32 = AtomicU32::new(0);
/// The address of the heap block an earlier call left (0: none).
static HEAP_BLOCK: AtomicUsize = AtomicUsize::new(0);
/// Zero in a fresh instance (it is in `.bss`).
static SCRATCH: [AtomicU8; 1280 << 10] = [const { AtomicU8::new(0) }; 1280 << 10];
const PATTERN: u8 = 0xA5;

fn residue() -> Vec<Header> {
    let calls = CALLS.fetch_add(1, Ordering::Relaxed) + 1;
    let mut found = Vec::new();
    if SCRATCH.iter().any(|b| b.load(Ordering::Relaxed) != 0) {
        found.push("static");
    }
    // Memory the allocator hands out: 256 KiB written with the pattern,
    // leaked, so a later call in this instance finds it at the address
    // kept in `HEAP_BLOCK`.
    let seen = HEAP_BLOCK.load(Ordering::Relaxed);
    if seen != 0 {
        // SAFETY: a block this instance leaked, never freed: valid and
        // initialised for its 256 KiB.
        #[allow(unsafe_code)]
        let block = unsafe { std::slice::from_raw_parts(seen as *const u8, 256 << 10) };
        if block.iter().all(|&b| b == PATTERN) {
            found.push("heap");
        }
    }
    let block: &'static mut [u8] = vec![PATTERN; 256 << 10].leak();
    HEAP_BLOCK.store(block.as_ptr() as usize, Ordering::Relaxed);
    for b in SCRATCH.iter() {
        b.store(PATTERN, Ordering::Relaxed);
    }
    let residue = if found.is_empty() { "clean".to_owned() } else { found.join(",") };
    vec![header("x-calls", calls), header("x-residue", residue)]
}

export!(Testbed);
