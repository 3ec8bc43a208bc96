"""Loads a large config through the REST API, as a tenant would:
`bulk_config.py <tenant-api-url> <token> <service-id> <routes> <consumers>`.
Routes are `GET /r/<i>/*` (API key required); consumers are on the `free`
tier. Eight keep-alive connections in parallel. Prints the last consumer's
API key.
"""

import http.client
import json
import sys
import threading
import urllib.parse

base, token, service, routes, consumers = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
url = urllib.parse.urlparse(base)
WORKERS = 8
last_key = []


def post(conn, path, body):
    conn.request("POST", url.path + path, json.dumps(body),
                 {"content-type": "application/json", "authorization": f"Bearer {token}"})
    response = conn.getresponse()
    data = response.read()
    if response.status != 201:
        raise SystemExit(f"POST {path}: {response.status} {data[:200]!r}")
    return json.loads(data)


def worker(index):
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=60)
    for i in range(index, routes, WORKERS):
        post(conn, "/routes", {"method": "GET", "pathPattern": f"/r/{i}/*", "serviceId": service,
                               "authRequired": True})
    for i in range(index, consumers, WORKERS):
        created = post(conn, "/consumers", {"name": f"c{i}", "rateLimitTier": "free"})
        if i == consumers - 1:
            last_key.append(created["apiKey"])


threads = [threading.Thread(target=worker, args=(i,)) for i in range(WORKERS)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(last_key[0])
