"""The soak run: the whole product at a steady load for a bounded time,
watching both binaries' memory.

    GATEHOUSE_BIN=... UPSTREAM_BIN=... NGINX_BIN=... TENANT_PLUGIN=... \\
        python3 benches/load/soak.py [minutes]            (default 10)

(`SOAK=10 benches/load/run.sh` builds what it needs and runs this.) Starts
the upstream, the control plane (SQLite) and one node with request logs as
compare.py does, then paces wrk at a steady rate (32 connections, each
sending a request every 8 ms) over a mix of the three routes: no policy,
api-key-auth + rate-limit, and a tenant plugin. Every 10 s it samples the
resident memory (VmRSS) of the node and the control plane. Memory is flat
when the last sample is within 10 % + 5 MB of the sample after the first
minute (warm-up: pools, caches and buffers fill). Prints the series and
the verdict; writes benches/results/soak.json.
"""

import json
import os
import subprocess
import sys
import threading
import time

import compare

SAMPLE_EVERY_S = 10
WARM_UP_S = 60
PACE_MS = 8

LUA = """
local paths = {"/open", "/secure", "/plugin"}
local n = 0
local key = ""
init = function(args) key = args[1] end
request = function()
  n = n + 1
  return wrk.format("GET", paths[(n % 3) + 1], {["x-api-key"] = key})
end
delay = function() return PACE_MS end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('RESULT {"requests":%d,"duration_us":%d,"p50":%d,"p99":%d,'
    .. '"socket_errors":%d,"non_2xx":%d}\\n', summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(99), e.connect + e.read + e.write + e.timeout, e.status))
end
""".replace("PACE_MS", str(PACE_MS))


def flat(series):
    """Whether memory stayed flat after the warm-up, and the two figures
    compared."""
    warm = next((mb for t, mb in series if t >= WARM_UP_S), series[0][1])
    last = series[-1][1]
    return last <= warm * 1.10 + 5, warm, last


def main():
    minutes = float(sys.argv[1]) if len(sys.argv) > 1 else 10
    seconds = int(minutes * 60)
    script = os.path.join(compare.WORK, "soak.lua")
    with open(script, "w") as f:
        f.write(LUA)
    compare.start([compare.UPSTREAM, compare.UPSTREAM_ADDR], compare.LOAD_CPU, "upstream.log")
    compare.wait_http(f"http://{compare.UPSTREAM_ADDR}/")
    consumer_key, key, control = compare.setup_tenant()
    node = compare.start_node(key, "node-soak", logs=True)
    compare.wrk("http://127.0.0.1:18080/plugin", 2)  # warm-up
    time.sleep(1)  # the tenant plugin is fetched and compiled in the background
    result = {}
    args = ["taskset", "-c", compare.LOAD_CPU, "wrk", "-t1", "-c32", f"-d{seconds}s", "-s", script,
            "http://127.0.0.1:18080", "--", consumer_key]
    load = threading.Thread(target=lambda: result.update(json.loads(next(
        l for l in subprocess.run(args, capture_output=True, text=True, check=True).stdout.splitlines()
        if l.startswith("RESULT "))[len("RESULT "):])))
    started = time.time()
    load.start()
    samples = []
    print(f"{'t (s)':>6} {'node RSS MB':>12} {'control RSS MB':>15}", file=sys.stderr)
    while load.is_alive():
        t = round(time.time() - started)
        node_mb = compare.peak_rss_mb([node.pid], "VmRSS:")
        control_mb = compare.peak_rss_mb([control.pid], "VmRSS:")
        samples.append({"t_s": t, "node_rss_mb": node_mb, "control_rss_mb": control_mb})
        print(f"{t:>6} {node_mb:>12} {control_mb:>15}", file=sys.stderr)
        load.join(SAMPLE_EVERY_S)
    stored = sum(b["requestCount"] for b in metrics_buckets())
    node_flat, node_warm, node_last = flat([(s["t_s"], s["node_rss_mb"]) for s in samples])
    control_flat, control_warm, control_last = flat([(s["t_s"], s["control_rss_mb"]) for s in samples])
    summary = {
        "machine": os.uname().nodename, "cpus": os.cpu_count(), "minutes": minutes,
        "load": f"wrk -t1 -c32, one request per connection every {PACE_MS} ms, routes /open /secure /plugin in turn",
        "requests": result["requests"],
        "requests_per_s": round(result["requests"] / (result["duration_us"] / 1e6)),
        "p50_ms": result["p50"] / 1000, "p99_ms": result["p99"] / 1000,
        "errors": result["socket_errors"] + result["non_2xx"],
        "requests_in_control_plane_metrics": stored,
        "node": {"rss_after_warm_up_mb": node_warm, "rss_end_mb": node_last,
                 "peak_mb": max(s["node_rss_mb"] for s in samples), "flat": node_flat},
        "control_plane": {"rss_after_warm_up_mb": control_warm, "rss_end_mb": control_last,
                          "peak_mb": max(s["control_rss_mb"] for s in samples), "flat": control_flat},
        "samples": samples,
    }
    os.makedirs("benches/results", exist_ok=True)
    with open("benches/results/soak.json", "w") as f:
        json.dump(summary, f, indent=2)
    print(f"\n{summary['requests']} requests in {minutes} min ({summary['requests_per_s']} req/s), "
          f"p50 {summary['p50_ms']} ms, p99 {summary['p99_ms']} ms, {summary['errors']} errors; "
          f"{stored} counted by the control plane's metrics (warm-up included)")
    for name in ("node", "control_plane"):
        s = summary[name]
        print(f"{name}: RSS {s['rss_after_warm_up_mb']} MB after warm-up -> {s['rss_end_mb']} MB at the end "
              f"(peak {s['peak_mb']} MB): {'flat' if s['flat'] else 'GROWING'}")
    print("written to benches/results/soak.json")
    compare.stop(node)


def metrics_buckets():
    """The tenant's metrics buckets of the last hour (the control plane's
    count of what the node shipped)."""
    token, base = compare.TENANT["token"], compare.TENANT["base"]
    return compare.api("GET", base + "/metrics?period=1h", token=token)


if __name__ == "__main__":
    compare.run(main)
