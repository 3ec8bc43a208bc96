"""Runs the load scenarios of benches/load/run.sh and reports them.

Each scenario starts what it measures, warms it up for 2 s, then drives it
with wrk (32 connections, one thread) for the given duration, reading the
proxy's CPU time and peak RSS from /proc. The peers (nginx, pingap, pingora
alone) come first, then the cost ladder: the node with one layer of its
request handling added at a time (see LADDER), each rung's CPU a request
beside what it added to the rung below and the ratio of pingora alone's to
it. Prints the tables and writes benches/results/latest.json.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

DURATION = int(sys.argv[1]) if len(sys.argv) > 1 and sys.argv[1].isdigit() else 10
BIG_CONFIG = os.environ.get("BIG_CONFIG", "1") != "0"
ONLY_BIG_CONFIG = os.environ.get("BIG_CONFIG") == "only"
GATEHOUSE = os.environ["GATEHOUSE_BIN"]
UPSTREAM = os.environ["UPSTREAM_BIN"]
NGINX = os.environ["NGINX_BIN"]
TENANT_PLUGIN = os.environ["TENANT_PLUGIN"]
# The JavaScript and Python examples, built by run.sh (their rungs are left
# out without them).
JS_PLUGIN = os.environ.get("JS_PLUGIN")
PYTHON_PLUGIN = os.environ.get("PYTHON_PLUGIN")
# pingap, built and cached by run.sh (its row is left out without it).
PINGAP = os.environ.get("PINGAP_BIN")
BARE_PINGORA = os.environ["BARE_PINGORA_BIN"]
CONNECTIONS = 32
PROXY_CPU, LOAD_CPU = "0", "1"
UPSTREAM_ADDR = "127.0.0.1:18081"
CONTROL = "http://127.0.0.1:18000"
WORK = tempfile.mkdtemp(prefix="gatehouse-load-")
WRK_SCRIPT = os.path.join(WORK, "report.lua")
processes = []
TENANT = {}

with open(WRK_SCRIPT, "w") as f:
    f.write(
        """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('RESULT {"requests":%d,"duration_us":%d,"p50":%d,"p99":%d,"p999":%d,'
    .. '"socket_errors":%d,"non_2xx":%d}\\n', summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(99), latency:percentile(99.9),
    e.connect + e.read + e.write + e.timeout, e.status))
end
"""
    )


def start(args, cpu, log, nice=0, env=None):
    proc = subprocess.Popen(
        ["taskset", "-c", cpu, "nice", "-n", str(nice)] + args,
        stdout=subprocess.DEVNULL,
        stderr=open(os.path.join(WORK, log), "w"),
        env=None if env is None else dict(os.environ, **env),
    )
    processes.append(proc)
    return proc


def stop(proc):
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


def wait_http(url, status=200, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == status:
                    return
        except urllib.error.HTTPError as e:
            if e.code == status:
                return
        except Exception:
            pass
        time.sleep(0.1)
    raise SystemExit(f"{url} never answered {status}")


def api(method, path, body=None, token=None, raw=None, content_type="application/json"):
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    request = urllib.request.Request(CONTROL + path, data=data, method=method)
    if data is not None:
        request.add_header("content-type", content_type)
    if token:
        request.add_header("authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=60) as r:
        text = r.read()
        return json.loads(text) if text else None


def cpu_seconds(pids):
    ticks = 0
    for pid in pids:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def peak_rss_mb(pids, field="VmHWM:"):
    """Peak resident memory (VmHWM) of `pids`; with field="VmRSS:", the
    resident memory now."""
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field):
                    total += int(line.split()[1])
    return round(total / 1024, 1)


# Paced connections: enough that each one's cycle (a request and its pause)
# is over 10 ms at half of pingora alone's maximum here (13.6 ms at 18,830
# req/s). wrk pauses in whole milliseconds and its timers fire late by a
# share of one, which a ~1 ms cycle (32 connections) cannot absorb: the
# offered rate then misses by half or more.
PACED_CONNECTIONS = 256
# How far the paced run may miss its target and still be compared.
ON_TARGET = 0.05
# Calibration runs of a paced scenario at most (see measure_half_load).
TRIALS = 4
PACED_SCRIPT = os.path.join(WORK, "paced.lua")
with open(PACED_SCRIPT, "w") as f:
    # wrk pauses whole milliseconds: a fractional pause is the whole one
    # below or above it, at random in the proportion that averages to it.
    f.write(open(WRK_SCRIPT).read() + """
local pause = tonumber(os.getenv('WRK_DELAY_MS'))
local whole = math.floor(pause)
delay = function()
  if math.random() < pause - whole then return whole + 1 end
  return whole
end
""")


# The control plane's process once it runs (setup_tenant). It runs as a
# user runs it, through every scenario: on CPU 1 with wrk and the upstream,
# at the same priority, storing the logs scenarios' telemetry as it comes.
# Its own metrics (--metrics-listen) say what it stored meanwhile and its
# CPU time what that cost, beside the node's figures.
CONTROL_PROCESS = []
CONTROL_METRICS = "http://127.0.0.1:18095/metrics"


def wrk(url, seconds, headers=(), paced_ms=None, drain=True):
    """wrk against `url`; with `paced_ms`, each of PACED_CONNECTIONS waits
    that long between its requests (a steady offered load). With `drain`,
    returns once the node's telemetry of the run is shipped."""
    connections, script = (CONNECTIONS, WRK_SCRIPT) if paced_ms is None else (PACED_CONNECTIONS, PACED_SCRIPT)
    env = dict(os.environ, WRK_DELAY_MS=str(paced_ms or 0))
    args = ["taskset", "-c", LOAD_CPU, "wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "-s", script]
    for header in headers:
        args += ["-H", header]
    out = subprocess.run(args + [url], capture_output=True, text=True, check=True, env=env).stdout
    if drain:
        wait_for_outbox()
    line = next(l for l in out.splitlines() if l.startswith("RESULT "))
    return json.loads(line[len("RESULT "):])


def outbox_batches():
    """Telemetry batches the running node has waiting (0: none, or no
    node; None: the node did not answer in time)."""
    try:
        metrics = urllib.request.urlopen("http://127.0.0.1:19080/metrics", timeout=2).read().decode()
    except urllib.error.URLError as err:
        return 0 if isinstance(err.reason, ConnectionRefusedError) else None  # refused: no node
    except OSError:  # a timeout reading the answer
        return None
    waiting = [line.split()[1] for line in metrics.splitlines()
               if line.startswith("gatehouse_telemetry_batches_waiting")]
    return float(waiting[0]) if waiting else 0


def wait_for_outbox(timeout=120):
    """Waits until the running node (if any) has no telemetry waiting."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if outbox_batches() == 0:
            return
        time.sleep(0.1)
    print("the node's outbox did not drain", file=sys.stderr)


def control_samples():
    """The control plane's metrics now, by sample name (empty before it runs)."""
    if not CONTROL_PROCESS:
        return {}
    text = urllib.request.urlopen(CONTROL_METRICS, timeout=5).read().decode()
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            samples[name] = float(value)
    return samples


def measure(name, url, pids, headers=()):
    wrk(url, 2, headers)  # warm-up: connections, pools, caches
    control_pids = [p.pid for p in CONTROL_PROCESS]
    before = cpu_seconds(pids) if pids else 0
    control_before, samples_before = cpu_seconds(control_pids), control_samples()
    result = wrk(url, DURATION, headers)
    after = cpu_seconds(pids) if pids else 0
    # After the node's outbox drained (wrk waits for it): all of the run's
    # telemetry is stored.
    control_after, samples_after = cpu_seconds(control_pids), control_samples()
    seconds = result["duration_us"] / 1e6
    delta = lambda sample: samples_after.get(sample, 0) - samples_before.get(sample, 0)
    lag_count = delta("gatehouse_control_telemetry_lag_seconds_count")
    row = {
        "scenario": name,
        "requests_per_s": round(result["requests"] / seconds),
        "p50_ms": result["p50"] / 1000,
        "p99_ms": result["p99"] / 1000,
        "p999_ms": result["p999"] / 1000,
        "errors": result["socket_errors"] + result["non_2xx"],
        "proxy_cpu_us_per_request": round((after - before) * 1e6 / max(result["requests"], 1), 1) if pids else None,
        "proxy_peak_rss_mb": peak_rss_mb(pids) if pids else None,
        "control_cpu_us_per_request": (round((control_after - control_before) * 1e6 / max(result["requests"], 1), 1)
                                       if control_pids else None),
        "control_log_rows": int(delta('gatehouse_control_telemetry_rows_total{kind="logs"}')),
        "control_lag_mean_s": (round(delta("gatehouse_control_telemetry_lag_seconds_sum") / lag_count, 2)
                               if lag_count else None),
    }
    print(f"  {name}: {row['requests_per_s']} req/s, p99 {row['p99_ms']} ms", file=sys.stderr)
    return row


def measure_half_load(name, url, full, target, headers=()):
    """Latency at `target` requests a second (half of pingora alone's
    maximum): PACED_CONNECTIONS, each pausing between its requests so that
    together they offer that rate. The pause is the time a connection has
    for each request less the time a request takes at that load: from a
    first guess (`full`'s median latency), 2 s trials correct it by what
    each one's cycle (a request and its pause) missed the target by, until
    a trial is within 3 % of it (at most TRIALS of them; wrk's timers fire
    late by a varying share of a millisecond, so one correction is not
    enough)."""
    per_request_ms = PACED_CONNECTIONS * 1000 / target
    pause_ms = max(0.0, per_request_ms - full["p50_ms"])
    for _ in range(TRIALS):
        trial = wrk(url, 2, headers, pause_ms)
        trial_rate = trial["requests"] / (trial["duration_us"] / 1e6)
        if trial_rate == 0:
            raise SystemExit(f"{name}: no request answered while pacing")
        if abs(trial_rate / target - 1) <= 0.03:
            break
        cycle_ms = PACED_CONNECTIONS * 1000 / trial_rate
        pause_ms = max(0.0, pause_ms + per_request_ms - cycle_ms)
    result = wrk(url, DURATION, headers, pause_ms)
    rate = result["requests"] / (result["duration_us"] / 1e6)
    row = {
        "scenario": name,
        "target_requests_per_s": round(target),
        "on_target": abs(rate / target - 1) <= ON_TARGET,
        "pause_ms": round(pause_ms, 2),
        "share_of_own_max": round(rate / full["requests_per_s"], 2),
        "requests_per_s": round(rate),
        "p50_ms": result["p50"] / 1000,
        "p99_ms": result["p99"] / 1000,
        "p999_ms": result["p999"] / 1000,
        "errors": result["socket_errors"] + result["non_2xx"],
    }
    print(f"  {name}: {row['requests_per_s']} req/s ({row['share_of_own_max']} of its max), "
          f"p99 {row['p99_ms']} ms", file=sys.stderr)
    return row


def nginx_pids(master):
    children = subprocess.run(["pgrep", "-P", str(master.pid)], capture_output=True, text=True).stdout.split()
    return [master.pid] + [int(c) for c in children]


def start_nginx():
    conf = os.path.join(WORK, "nginx.conf")
    with open(conf, "w") as f:
        f.write(
            f"""
worker_processes 1;
daemon off;
pid {WORK}/nginx.pid;
error_log {WORK}/nginx-error.log;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  upstream backend {{ server {UPSTREAM_ADDR}; keepalive 64; }}
  server {{
    listen 127.0.0.1:18090;
    location / {{
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header X-Forwarded-For $remote_addr;
      proxy_set_header X-Request-Id $request_id;
    }}
  }}
}}
"""
        )
    proc = start([NGINX, "-c", conf, "-p", WORK], PROXY_CPU, "nginx.log")
    wait_http("http://127.0.0.1:18090/")
    return proc


def start_pingap():
    """pingap as a plain reverse proxy: one upstream, no plugins, one
    worker thread, no work stealing, no access log."""
    conf = os.path.join(WORK, "pingap.toml")
    with open(conf, "w") as f:
        f.write(PINGAP_CONFIG.format(upstream=UPSTREAM_ADDR, work=WORK))
    # No certificate task.
    proc = start([PINGAP, "-c", conf], PROXY_CPU, "pingap.log", env={"PINGAP_DISABLE_ACME": "1"})
    wait_http("http://127.0.0.1:18092/")
    return proc


# Key names of pingap 0.13's TOML (pingap-config/src/common.rs). Nothing
# is added to requests or responses without plugins or
# enable_reverse_proxy_headers; the pool is larger than wrk's connections.
PINGAP_CONFIG = """
[basic]
pid_file = "{work}/pingap.pid"
threads = 1
work_stealing = false
upstream_keepalive_pool_size = 1024
log_level = "warn"

[upstreams.backend]
addrs = ["{upstream}"]
alpn = "h1"
idle_timeout = "60s"

[locations.all]
upstream = "backend"
path = "/"

[servers.bench]
addr = "127.0.0.1:18092"
locations = ["all"]
threads = 1
"""


def start_node(key, name, logs, layers="all", state=None):
    """A node of the tenant with gateway key `key`; its state dir is `state`
    under WORK (default: `name`), which keeps the plugins it compiled for
    the next node started with it."""
    proc = start(
        [GATEHOUSE, "proxy", "--control-url", CONTROL, "--gateway-key", key, "--listen", "127.0.0.1:18080",
         "--admin-listen", "127.0.0.1:19080", "--state-dir", os.path.join(WORK, state or name), "--threads", "1",
         "--request-logs", "true" if logs else "false", "--telemetry-memory-records", "1000000"]
        + ([] if layers == "all" else ["--bench-layers", layers]),
        PROXY_CPU, f"{name}.log",
    )
    wait_http("http://127.0.0.1:19080/healthz")
    return proc


def tenant(email):
    reg = api("POST", "/api/auth/register", {"name": "load", "email": email, "password": "load-bench-pw"})
    return reg["token"], f"/api/tenants/{reg['tenantId']}", reg["gatewayApiKey"]


def setup_tenant():
    """Starts the control plane with a tenant, its routes and a consumer;
    returns the consumer's key, the gateway key and the control plane's
    process. The tenant's token and API base are kept in TENANT. Routes:
    /open (no key), /keyed (a key, no limit: the consumer's tier has none),
    /secure (a key and a limit, the route's override), /plugin (the Rust
    add-header example, setting one header from its config), and, when
    built, /plugin-js (js-guard, no rule matching) and /plugin-py
    (python-rewrite, no rule matching)."""
    control = start([GATEHOUSE, "control", "--listen", "127.0.0.1:18000", "--database-url", f"sqlite://{WORK}/db.sqlite",
           "--jwt-secret", "load-bench-secret-load-bench-secret-00", "--data-dir", f"{WORK}/data",
           "--mail-outbox", f"{WORK}/outbox", "--metrics-listen", CONTROL_METRICS.split("/")[2]],
           LOAD_CPU, "control.log")
    wait_http(CONTROL + "/healthz")
    CONTROL_PROCESS.append(control)
    token, base, key = tenant(f"load-{time.time_ns()}@example.com")
    TENANT.update(token=token, base=base)
    service = api("POST", base + "/services", {"name": "fast", "targetUrl": f"http://{UPSTREAM_ADDR}"}, token)["id"]
    api("PUT", base + "/rate-limit-tiers", {"tiers": [{"name": "free", "requestsPerMinute": None}],
                                            "anonymousRequestsPerMinute": None}, token)
    api("POST", base + "/routes", {"method": "GET", "pathPattern": "/open", "serviceId": service,
                                   "authRequired": False}, token)
    api("POST", base + "/routes", {"method": "GET", "pathPattern": "/keyed", "serviceId": service,
                                   "authRequired": True}, token)
    # A limit never reached (a million a second), so every request takes
    # from the bucket and proceeds.
    api("POST", base + "/routes", {"method": "GET", "pathPattern": "/secure", "serviceId": service,
                                   "authRequired": True, "rateLimitOverride": 60_000_000}, token)
    for path, name, wasm, config in PLUGINS:
        if not wasm:
            continue
        plugin = api("POST", base + f"/plugins?name={name}&version=1", token=token,
                     raw=open(wasm, "rb").read(), content_type="application/wasm")["id"]
        api("POST", base + "/routes", {"method": "GET", "pathPattern": path, "serviceId": service,
                                       "authRequired": False,
                                       "plugins": [{"pluginId": plugin, "config": config}]}, token)
    consumer_key = api("POST", base + "/consumers", {"name": "bench", "rateLimitTier": "free"}, token)["apiKey"]
    return consumer_key, key, control


# The tenant plugins' routes: (path, plugin, its component, its config on
# the route). A plugin whose component was not built is left out, and so
# is its rung.
PLUGINS = [("/plugin", "add-header", TENANT_PLUGIN, {"request": {"x-team": "bench"}}),
           ("/plugin-js", "js-guard", JS_PLUGIN, {"denyIps": ["203.0.113.7"]}),
           ("/plugin-py", "python-rewrite", PYTHON_PLUGIN, {"rules": [{"from": "/v1/", "to": "/v2/"}]})]


# The cost ladder: (rung, what it adds, node settings, path, needs the
# consumer key, the rung it is measured against). Each rung is the node
# with one more layer of its request handling than the rung below; the
# plugin rungs each add one tenant plugin to the open route with request
# logs. Rungs of one node settings share a node.
LADDER = [
    ("route match", "route lookup, upstream peer", ("route", False), "/open", False, "pingora alone"),
    ("+ request id, forwarding headers", "X-Request-Id, X-Forwarded-*, Host, path", ("headers", False), "/open",
     False, "route match"),
    ("+ metrics", "requests and upstream latency counted", ("metrics", False), "/open", False,
     "+ request id, forwarding headers"),
    ("+ telemetry aggregates", "per-route minute aggregates, error events", ("all", False), "/open", False,
     "+ metrics"),
    ("+ request logs (defaults)", "a log record of every request", ("all", True), "/open", False,
     "+ telemetry aggregates"),
    ("+ api-key-auth", "the key checked, X-Consumer-Id", ("all", True), "/keyed", True,
     "+ request logs (defaults)"),
    ("+ rate-limit", "a token taken from the consumer's bucket", ("all", True), "/secure", True, "+ api-key-auth"),
    ("defaults + Rust plugin", "add-header: one header from config", ("all", True), "/plugin", False,
     "+ request logs (defaults)"),
    ("defaults + JavaScript plugin", "js-guard: rules checked, none matches", ("all", True), "/plugin-js", False,
     "+ request logs (defaults)"),
    ("defaults + Python plugin", "python-rewrite: rules checked, none matches", ("all", True), "/plugin-py", False,
     "+ request logs (defaults)"),
]


def plugin_paths():
    """The routes of the tenant plugins setup_tenant attached."""
    return [path for path, _, wasm, _ in PLUGINS if wasm]


def runs(rung):
    """Whether the ladder's `rung` runs (a plugin rung needs its component)."""
    path = rung[3]
    return path in plugin_paths() or all(path != p for p, _, _, _ in PLUGINS)


# Every rung is measured against one measured before it.
assert all(base in [r[0] for r in LADDER[:i]] + ["pingora alone"] for i, (*_, base) in enumerate(LADDER)), \
    "a rung's base must be a rung above it or pingora alone"


def main():
    results = {"machine": os.uname().nodename, "cpus": os.cpu_count(), "duration_s": DURATION,
               "connections": CONNECTIONS, "paced_connections": PACED_CONNECTIONS,
               "on_target_within": ON_TARGET,
               "pinning": f"proxies on CPU {PROXY_CPU} (one worker each); wrk, the upstream and the control plane "
                          f"on CPU {LOAD_CPU}",
               "scenarios": []}
    rows = results["scenarios"]
    start([UPSTREAM, UPSTREAM_ADDR], LOAD_CPU, "upstream.log")
    wait_http(f"http://{UPSTREAM_ADDR}/")
    if ONLY_BIG_CONFIG:
        setup_tenant()
        big = large_config()
        print(json.dumps(big, indent=2))
        return
    rows.append(measure("direct to upstream", f"http://{UPSTREAM_ADDR}/bench", []))

    nginx = start_nginx()
    rows.append(measure("nginx", "http://127.0.0.1:18090/bench", nginx_pids(nginx)))
    stop(nginx)
    if PINGAP:
        pingap = start_pingap()
        rows.append(measure("pingap 0.13.1 (no plugins)", "http://127.0.0.1:18092/bench", [pingap.pid]))
        stop(pingap)

    # pingora with nothing of Gatehouse in it, built as the node is: the
    # floor of what a request costs through pingora on this machine.
    bare = start([BARE_PINGORA, "127.0.0.1:18091", UPSTREAM_ADDR, "1"], PROXY_CPU, "bare.log")
    wait_http("http://127.0.0.1:18091/")
    bare_row = ("pingora alone", "http://127.0.0.1:18091/bench", [bare.pid])
    rows.append(measure(*bare_row))
    # The latency rows offer each the same rate: half of pingora alone's
    # maximum.
    half = results["half_load"] = []
    half_rate = rows[-1]["requests_per_s"] / 2
    half.append(measure_half_load("pingora alone", bare_row[1], rows[-1], half_rate))
    stop(bare)

    consumer_key, key, _control = setup_tenant()
    keyed = [f"x-api-key: {consumer_key}"]
    # Every rung's node loads the tenant's plugins (all of them, whatever
    # it runs), compiled once: a first node compiles them into the state
    # dir the rungs share, and is stopped once each plugin route answers
    # (compiling the JavaScript and Python runtimes takes tens of seconds
    # of CPU, which would otherwise land in the first rungs).
    node = start_node(key, "node-compile", logs=False, state="node-state")
    for plugin_path in plugin_paths():
        wait_http("http://127.0.0.1:18080" + plugin_path, timeout=600)
    stop(node)
    ladder = results["ladder"] = []
    node, running = None, None
    for rung, adds, settings, path, needs_key, base in filter(runs, LADDER):
        if settings != running:
            if node:
                stop(node)
            layers, logs = settings
            node = start_node(key, f"node-{layers}-{logs}", logs=logs, layers=layers, state="node-state")
            running = settings
            for plugin_path in plugin_paths():  # loaded from the compiled cache
                wait_http("http://127.0.0.1:18080" + plugin_path, timeout=120)
        url = "http://127.0.0.1:18080" + path
        row = measure(rung, url, [node.pid], headers=keyed if needs_key else ())
        row.update(adds=adds, base=base)
        ladder.append(row)
        if rung in ("+ request logs (defaults)", "+ rate-limit"):
            half.append(measure_half_load(rung, url, row, half_rate, headers=keyed if needs_key else ()))
    stop(node)

    by_name = {r["scenario"]: r for r in rows + ladder}
    cpu = lambda name: by_name[name]["proxy_cpu_us_per_request"]
    pingora_us, nginx_us = cpu("pingora alone"), cpu("nginx")
    nginx_rps = by_name["nginx"]["requests_per_s"]
    for row in rows + ladder:
        row["ratio_to_nginx"] = round(row["requests_per_s"] / nginx_rps, 2)
        us = row["proxy_cpu_us_per_request"]
        if us:
            # CPU efficiency: what pingora alone (or nginx) spends on a
            # request over what this spends.
            row["efficiency_vs_pingora"] = round(pingora_us / us, 2)
            row["efficiency_vs_nginx"] = round(nginx_us / us, 2)
    for row in ladder:
        row["added_us"] = round(row["proxy_cpu_us_per_request"] - cpu(row["base"]), 1)
    # The latency goal: p99 at half of pingora alone's maximum against
    # pingora alone's own p99 at that rate.
    # Rows that missed the offered rate are not compared (None).
    pingora = next(h for h in half if h["scenario"] == "pingora alone")
    for row in half:
        comparable = row["on_target"] and pingora["on_target"]
        row["p99_vs_pingora"] = round(row["p99_ms"] / pingora["p99_ms"], 2) if comparable else None

    if BIG_CONFIG:
        results["large_config"] = large_config()

    os.makedirs("benches/results", exist_ok=True)
    with open("benches/results/latest.json", "w") as f:
        json.dump(results, f, indent=2)
    print_tables(results)


def print_tables(results):
    rows, ladder, half = results["scenarios"], results["ladder"], results["half_load"]
    blank = lambda value: "" if value is None else value
    print(f"\n{results['pinning']}; wrk -t1 -c{CONNECTIONS}, {DURATION} s per scenario, on {results['machine']} "
          f"({results['cpus']} CPUs)\n")
    header = (f"{'':34} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'CPU µs/req':>10} {'added µs':>8} "
              f"{'eff. vs pingora':>15} {'eff. vs nginx':>13} {'vs nginx':>8} {'RSS MB':>7} {'errors':>6} {'control µs/req':>14} "
              f"{'logs stored':>11} {'lag s':>6}")
    print(header)
    print("-" * len(header))
    for title, group in (("peers", rows), ("the cost ladder", ladder)):
        print(title)
        for r in group:
            print(f"  {r['scenario']:32} {r['requests_per_s']:>8} {r['p50_ms']:>7} {r['p99_ms']:>7} "
                  f"{blank(r['proxy_cpu_us_per_request']):>10} {blank(r.get('added_us')):>8} "
                  f"{blank(r.get('efficiency_vs_pingora')):>15} {blank(r.get('efficiency_vs_nginx')):>13} "
                  f"{r['ratio_to_nginx']:>8} "
                  f"{blank(r['proxy_peak_rss_mb']):>7} {r['errors']:>6} "
                  f"{blank(r['control_cpu_us_per_request']):>14} {r['control_log_rows'] or '':>11} "
                  f"{blank(r['control_lag_mean_s']):>6}")
    print("\n'added µs': the rung's CPU a request over its base's (the rung above it; the plugin rungs over "
          "'+ request logs (defaults)'); 'eff. vs pingora' ('eff. vs nginx'): pingora alone's (nginx's) CPU a "
          "request over the row's; "
          "'vs nginx': requests a second over nginx's. The control plane runs throughout, on the load CPU; "
          "'control µs/req' is its CPU time a request, 'logs stored' what it stored of the run, 'lag s' the "
          "mean age of a batch's oldest log when stored.")
    print(f"\nat half of pingora alone's maximum ({PACED_CONNECTIONS} connections, paced): req/s, p50, p99, "
          f"p99.9 ms")
    for r in half:
        if r["p99_vs_pingora"] is not None:
            versus = f"p99 {r['p99_vs_pingora']}× pingora alone's"
        elif r["on_target"]:
            versus = f"not compared: pingora alone's rate missed the offered one by over {ON_TARGET:.0%}"
        else:
            versus = f"not compared: the rate missed the offered one by over {ON_TARGET:.0%}"
        print(f"  {r['scenario']:32} {r['requests_per_s']:>8} {r['p50_ms']:>7} {r['p99_ms']:>7} {r['p999_ms']:>7}"
              f"   {versus} (offered {r['target_requests_per_s']}/s, "
              f"{r['share_of_own_max']} of its own max, {r['errors']} errors)")
    if "large_config" in results:
        big = results["large_config"]
        print(f"\nlarge config ({big['routes']} routes, {big['consumers']} consumers): {big['requests_per_s']} req/s, "
              f"p99 {big['p99_ms']} ms, node RSS {big['proxy_configured_rss_mb']} MB configured, "
              f"{big['proxy_rss_mb']} MB after the run and a change (peak {big['proxy_peak_rss_mb']} MB), "
              f"{big['proxy_settled_rss_mb']} MB {SETTLE_S} s later; loaded in {big['load_s']} s, "
              f"a new route served {big['propagation_ms']} ms after the REST call, "
              f"a new consumer's key {big['consumer_propagation_ms']} ms after")
    print("\nwritten to benches/results/latest.json")


SETTLE_S = 15


def large_config():
    """10,000 routes and 100,000 consumers, loaded before the node starts."""
    token, base, key = tenant(f"big-{time.time_ns()}@example.com")
    service = api("POST", base + "/services", {"name": "fast", "targetUrl": f"http://{UPSTREAM_ADDR}"}, token)["id"]
    api("PUT", base + "/rate-limit-tiers", {"tiers": [{"name": "free", "requestsPerMinute": 60_000_000}],
                                            "anonymousRequestsPerMinute": None}, token)
    started = time.time()
    loader = subprocess.run(
        [sys.executable, "benches/load/bulk_config.py", CONTROL + base, token, service, "10000", "100000"],
        capture_output=True, text=True, check=True)
    consumer_key = loader.stdout.strip().splitlines()[-1]
    load_s = round(time.time() - started, 1)
    node = start_node(key, "node-big", logs=True)
    wait_http("http://127.0.0.1:18080/r/5000/x", status=401)  # the config is in
    configured_rss = peak_rss_mb([node.pid], "VmRSS:")
    row = measure("large config: api-key-auth + rate-limit + logs", "http://127.0.0.1:18080/r/5000/x",
                  [node.pid], headers=[f"x-api-key: {consumer_key}"])
    sent = time.time()
    api("POST", base + "/routes", {"method": "GET", "pathPattern": "/fresh", "serviceId": service,
                                   "authRequired": False}, token)
    served_within("http://127.0.0.1:18080/fresh")
    propagation_ms = round((time.time() - sent) * 1000)
    # A new consumer: the node's key index of 100,000 changes.
    sent = time.time()
    fresh_key = api("POST", base + "/consumers", {"name": "fresh", "rateLimitTier": "free"}, token)["apiKey"]
    served_within("http://127.0.0.1:18080/r/5000/x", [("x-api-key", fresh_key)])
    consumer_propagation_ms = round((time.time() - sent) * 1000)
    rss = peak_rss_mb([node.pid])
    after_rss = peak_rss_mb([node.pid], "VmRSS:")
    time.sleep(SETTLE_S)  # freed memory goes back to the OS in its own time
    settled_rss = peak_rss_mb([node.pid], "VmRSS:")
    stop(node)
    return {"routes": 10000, "consumers": 100000, "load_s": load_s, "requests_per_s": row["requests_per_s"],
            "p99_ms": row["p99_ms"], "proxy_peak_rss_mb": rss, "proxy_rss_mb": after_rss,
            "proxy_configured_rss_mb": configured_rss, "proxy_settled_rss_mb": settled_rss,
            "propagation_ms": propagation_ms, "consumer_propagation_ms": consumer_propagation_ms}


def served_within(url, headers=(), timeout_s=30):
    """Polls `url` until it answers 200 (a change has reached the node)."""
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(urllib.request.Request(url, headers=dict(headers)), timeout=1) as r:
                if r.status == 200:
                    return
        except Exception:
            time.sleep(0.005)
    raise SystemExit(f"{url} not served within {timeout_s} s")


def run(entry):
    """Runs `entry`, then stops every process it started and removes the
    work dir, however it ended (the load scripts' main)."""
    try:
        entry()
    finally:
        for proc in processes:
            if proc.poll() is None:
                stop(proc)
        shutil.rmtree(WORK, ignore_errors=True)


if __name__ == "__main__":
    run(main)
