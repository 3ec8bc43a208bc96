"""Profiles the node under one load scenario of compare.py with perf.

    GATEHOUSE_BIN=... UPSTREAM_BIN=... NGINX_BIN=... TENANT_PLUGIN=... \\
        python3 benches/load/profile.py plain|policies|plugin [seconds] [--graph]

(benches/load/run.sh sets the variables; `PROFILE=plain benches/load/run.sh`
runs this instead of the comparison.) Starts the upstream, the control
plane and one node as compare.py does, drives the scenario's URL with wrk
while `perf record` samples the node, and prints the functions with the
most self time (with --graph: call graphs from DWARF, slower). The node's
CPU time per request is printed too, as in the comparison. PERF_DATA=path
keeps the recording for `perf report -i path`.
"""

import os
import subprocess
import sys
import threading
import time

import compare

SCENARIOS = {
    # name: (path, request logs, needs a consumer key)
    "plain": ("/open", False, False),
    "logs": ("/open", True, False),
    "policies": ("/secure", True, True),
    "plugin": ("/plugin", True, False),
}


def main():
    scenario = sys.argv[1] if len(sys.argv) > 1 else "plain"
    seconds = int(sys.argv[2]) if len(sys.argv) > 2 and sys.argv[2].isdigit() else 10
    graph = "--graph" in sys.argv
    path, logs, keyed = SCENARIOS[scenario]
    compare.start([compare.UPSTREAM, compare.UPSTREAM_ADDR], compare.LOAD_CPU, "upstream.log")
    compare.wait_http(f"http://{compare.UPSTREAM_ADDR}/")
    consumer_key, key, _control = compare.setup_tenant()
    node = compare.start_node(key, "node-profile", logs=logs)
    headers = [f"x-api-key: {consumer_key}"] if keyed else []
    url = "http://127.0.0.1:18080" + path
    compare.wrk(url, 2, headers)
    time.sleep(1)  # a tenant plugin is fetched and compiled in the background
    data = os.environ.get("PERF_DATA") or os.path.join(compare.WORK, "perf.data")
    perf = ["perf", "record", "-o", data, "-F", "1999", "-p", str(node.pid)]
    perf += ["--call-graph", "dwarf,16384"] if graph else []
    result = {}
    load = threading.Thread(target=lambda: result.update(compare.wrk(url, seconds, headers)))
    before = compare.cpu_seconds([node.pid])
    recorder = subprocess.Popen(perf + ["--", "sleep", str(seconds)], stderr=subprocess.DEVNULL)
    load.start()
    recorder.wait()
    load.join()
    after = compare.cpu_seconds([node.pid])
    requests = max(result.get("requests", 1), 1)
    print(f"{scenario}: {round(requests / (result['duration_us'] / 1e6))} req/s, "
          f"node CPU {round((after - before) * 1e6 / requests, 1)} µs/request (perf running)")
    report = ["perf", "report", "-i", data, "--stdio", "--percent-limit", "0.7"]
    report += ["--no-children", "-G"] if graph else ["--no-children", "--sort", "dso,symbol"]
    subprocess.run(report, stderr=subprocess.DEVNULL)
    compare.stop(node)


if __name__ == "__main__":
    compare.run(main)
