# Gatehouse's getting-started steps, as `gatehouse dev` prints them and as
# docs/getting-started.md explains them (its steps are numbered as here);
# CI runs this file against the real binaries (tests/getting_started.rs),
# so every line here works.
#
# It needs GATEHOUSE_URL, GATEHOUSE_TOKEN and GATEHOUSE_TENANT (the control
# plane, a tenant token and the tenant's id), NODE (the gateway node) and
# ECHO (an upstream to forward to): `gatehouse dev` prints all five.

# ANCHOR: service
API="$GATEHOUSE_URL/api/tenants/$GATEHOUSE_TENANT"
AUTH="Authorization: Bearer $GATEHOUSE_TOKEN"
JSON="Content-Type: application/json"

# 2. A service: where the gateway forwards to.
SERVICE=$(curl -sS --fail-with-body -H "$AUTH" -H "$JSON" \
  -d "{\"name\": \"echo\", \"targetUrl\": \"$ECHO\"}" "$API/services" |
  sed -n 's/^{"id":"\([^"]*\)".*/\1/p')
echo "service: $SERVICE"
# ANCHOR_END: service

# ANCHOR: routes
# 3. Two routes to it: GET /hello, open to anyone, and everything under
#    /private/, which needs an API key and allows 5 requests a minute.
curl -sS --fail-with-body -o /dev/null -H "$AUTH" -H "$JSON" \
  -d "{\"method\": \"GET\", \"pathPattern\": \"/hello\", \"serviceId\": \"$SERVICE\", \"authRequired\": false}" \
  "$API/routes"
curl -sS --fail-with-body -o /dev/null -H "$AUTH" -H "$JSON" \
  -d "{\"method\": \"ANY\", \"pathPattern\": \"/private/*\", \"serviceId\": \"$SERVICE\", \"authRequired\": true, \"rateLimitOverride\": 5}" \
  "$API/routes"
# ANCHOR_END: routes

# ANCHOR: consumer
# 4. A consumer: someone who calls your API, with the key they send.
#    The key is shown this once; Gatehouse keeps only its hash.
KEY=$(curl -sS --fail-with-body -H "$AUTH" -H "$JSON" \
  -d '{"name": "alice"}' "$API/consumers" |
  sed -n 's/.*"apiKey":"\([^"]*\)".*/\1/p')
echo "alice's key: $KEY"
# ANCHOR_END: consumer

# ANCHOR: traffic
# 5. Traffic through the node. The config is pushed to it as it commits,
#    within milliseconds; this waits for it (10 s at most) all the same.
for _ in $(seq 100); do
  [ "$(curl -s -o /dev/null -w '%{http_code}' "$NODE/hello")" = 200 ] && break
  sleep 0.1
done
curl -sS "$NODE/hello?from=getting-started"
echo
echo "without a key: $(curl -s -o /dev/null -w '%{http_code}' "$NODE/private/report")"
echo "with alice's key: $(curl -s -o /dev/null -w '%{http_code}' -H "X-API-Key: $KEY" "$NODE/private/report")"
# ANCHOR_END: traffic

# ANCHOR: limit
# 6. The rate limit: the route allows 5 a minute, and one is spent.
for _ in 1 2 3 4 5; do
  printf '%s ' "$(curl -s -o /dev/null -w '%{http_code}' -H "X-API-Key: $KEY" "$NODE/private/report")"
done
echo
# ANCHOR_END: limit

# ANCHOR: logs
# 7. Every request is logged: the node ships its logs within a second.
sleep 2
curl -sS --fail-with-body -H "$AUTH" "$API/logs?path=/private/report"
echo
# ANCHOR_END: logs
