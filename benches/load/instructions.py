"""Counts the instructions the node executes a request, rung by rung, under
valgrind's callgrind: an exact figure where the CPU time of a short load
run moves by several µs from one run to the next.

    GATEHOUSE_BIN=... UPSTREAM_BIN=... NGINX_BIN=... TENANT_PLUGIN=... \\
        python3 benches/load/instructions.py [seconds] [rung ...]

(`INSTRUCTIONS=1 benches/load/run.sh [seconds] [rung ...]` sets the
variables and runs this.) Rungs are named as in compare.py's LADDER
and "pingora alone" (examples/bare_pingora); by default pingora alone and
every rung whose plugin is there (JS_PLUGIN and PYTHON_PLUGIN, when set,
add theirs; run.sh does not build them for this run).
For each rung a node runs under callgrind with instrumentation off; after
a warm-up it is switched on while wrk (4 connections) drives the
rung's route for the given seconds (default 10) and for SHIP_S seconds
after, while the run's telemetry is shipped, then off again. Prints
instructions a request (every thread of the node, background ones
included) and, for each rung, what it adds to its base rung; with
CALLGRIND_TOP=n, the n functions with the most instructions of their own.
"""

import os
import subprocess
import sys
import time

import compare

CONNECTIONS = 4
# Seconds a run's telemetry is given to be shipped (the node seals a batch
# every 250 ms; under valgrind it runs tens of times slower).
SHIP_S = 5


PINGORA_ALONE = "pingora alone"
CALLGRIND = ["valgrind", "--tool=callgrind", "--instr-atstart=no"]


def callgrind_pingora(out):
    """examples/bare_pingora under callgrind, on the node's port."""
    proc = compare.start(CALLGRIND + [f"--callgrind-out-file={out}", compare.BARE_PINGORA, "127.0.0.1:18080",
                                      compare.UPSTREAM_ADDR, "1"], compare.PROXY_CPU, os.path.basename(out) + ".log")
    compare.wait_http("http://127.0.0.1:18080/", timeout=300)
    return proc


def callgrind_node(key, rung_settings, state, out):
    layers, logs = rung_settings
    args = CALLGRIND + [f"--callgrind-out-file={out}",
            compare.GATEHOUSE, "proxy", "--control-url", compare.CONTROL, "--gateway-key", key,
            "--listen", "127.0.0.1:18080", "--admin-listen", "127.0.0.1:19080",
            "--state-dir", os.path.join(compare.WORK, state), "--threads", "1",
            "--request-logs", "true" if logs else "false", "--telemetry-memory-records", "1000000"]
    if layers != "all":
        args += ["--bench-layers", layers]
    proc = compare.start(args, compare.PROXY_CPU, os.path.basename(out) + ".log")
    compare.wait_http("http://127.0.0.1:19080/healthz", timeout=300)
    return proc


def callgrind_control(*args):
    subprocess.run(["callgrind_control", *args], check=True, capture_output=True)


def total_instructions(out):
    """The instructions of every thread's part of a callgrind run."""
    total = 0
    for path in [p for p in os.listdir(os.path.dirname(out)) if p.startswith(os.path.basename(out))]:
        with open(os.path.join(os.path.dirname(out), path)) as f:
            # A dump's header may say "summary: 0"; its totals close it.
            total += sum(int(line.split()[1]) for line in f if line.startswith("totals:"))
    return total


def main():
    seconds = int(sys.argv[1]) if len(sys.argv) > 1 and sys.argv[1].isdigit() else 10
    names = [a for a in sys.argv[1:] if not a.isdigit()]
    ladder = {rung[0]: rung for rung in compare.LADDER}
    ladder[PINGORA_ALONE] = (PINGORA_ALONE, "", None, "/bench", False, None)
    wanted = names or [PINGORA_ALONE] + [r[0] for r in filter(compare.runs, compare.LADDER)]
    unknown = [n for n in wanted if n not in ladder]
    if unknown:
        raise SystemExit(f"no such rung: {unknown}; the rungs: {list(ladder)}")
    top = int(os.environ.get("CALLGRIND_TOP", "0"))
    compare.start([compare.UPSTREAM, compare.UPSTREAM_ADDR], compare.LOAD_CPU, "upstream.log")
    compare.wait_http(f"http://{compare.UPSTREAM_ADDR}/")
    consumer_key, key, _control = compare.setup_tenant()
    # The tenant plugins compiled once, natively (compiling under valgrind
    # would take hours).
    node = compare.start_node(key, "node-compile", logs=False, state="node-state")
    for plugin_path in compare.plugin_paths():
        compare.wait_http("http://127.0.0.1:18080" + plugin_path, timeout=600)
    compare.stop(node)
    per_request = {}
    for name in wanted:
        _, _, settings, path, needs_key, base = ladder[name]
        out = os.path.join(compare.WORK, f"callgrind-{len(per_request)}")
        url = "http://127.0.0.1:18080" + path
        headers = [f"x-api-key: {consumer_key}"] if needs_key else []
        if settings is None:
            node = callgrind_pingora(out)
        else:
            node = callgrind_node(key, settings, "node-state", out)
            for plugin_path in compare.plugin_paths():
                compare.wait_http("http://127.0.0.1:18080" + plugin_path, timeout=300)
        wrk(url, 3, headers)  # warm-up: connections, pools, caches
        callgrind_control("-i", "on", str(node.pid))
        result = wrk(url, seconds, headers, drain=False)
        # The run's telemetry is shipped while counting, but not the
        # /metrics scrapes that wait for it: a pause of several flush
        # intervals, then a look with counting off.
        time.sleep(SHIP_S)
        callgrind_control("-i", "off", str(node.pid))
        if compare.outbox_batches() != 0:  # waiting, or no answer in time
            print(f"{name}: telemetry may still be waiting {SHIP_S} s after the run: the figure may leave out "
                  f"its shipping", file=sys.stderr)
        compare.wait_for_outbox()
        callgrind_control("--dump", str(node.pid))
        dumped = out + ".1"
        compare.stop(node)
        node.wait()
        requests = max(result["requests"], 1)
        per_request[name] = total_instructions(out) / requests
        added = f", adds {per_request[name] - per_request[base]:,.0f} to '{base}'" if base in per_request else ""
        print(f"{name}: {per_request[name]:,.0f} instructions a request over {requests} requests{added}",
              flush=True)
        if top:
            report = subprocess.run(["callgrind_annotate", "--inclusive=no", dumped], capture_output=True,
                                    text=True)
            lines = [l for l in report.stdout.splitlines() if l.strip() and l.lstrip()[0].isdigit()]
            print("\n".join(lines[1:top + 1]), flush=True)


def wrk(url, seconds, headers, drain=True):
    """wrk with few connections (the node runs slowly under valgrind)."""
    saved = compare.CONNECTIONS
    compare.CONNECTIONS = CONNECTIONS
    try:
        return compare.wrk(url, seconds, headers, drain=drain)
    finally:
        compare.CONNECTIONS = saved


if __name__ == "__main__":
    compare.run(main)
