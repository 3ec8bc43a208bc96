// Example plugin (JavaScript, componentize-js): blocks requests by rule.
//
// Config: {"denyIps": ["203.0.113.7"], "requireHeader": "x-tenant",
//          "denyHeader": {"name": "user-agent", "contains": "badbot"}}
// A request from a denied IP, without the required header, or whose header
// contains the denied text gets 403 with the gateway's error JSON and the
// rule that matched; everything else goes on unchanged.
import { getJson } from 'gatehouse:plugin/config@0.2.0';

function settings() {
  try {
    return JSON.parse(getJson());
  } catch {
    return {};
  }
}

function header(request, name) {
  const found = request.headers.find((h) => h.name === name);
  return found ? found.value : undefined;
}

function violation(rules, request) {
  if ((rules.denyIps || []).includes(request.clientIp)) {
    return `client IP ${request.clientIp} is denied`;
  }
  if (rules.requireHeader && header(request, rules.requireHeader.toLowerCase()) === undefined) {
    return `header ${rules.requireHeader} is required`;
  }
  const deny = rules.denyHeader;
  if (deny && deny.name && deny.contains) {
    const value = header(request, deny.name.toLowerCase());
    if (value !== undefined && value.includes(deny.contains)) {
      return `header ${deny.name} is denied`;
    }
  }
  return undefined;
}

const encoder = new TextEncoder();

export function describe() {
  return { name: 'js-guard', version: '0.1.0', hooks: { onRequest: true } };
}

export function onRequest(request) {
  const reason = violation(settings(), request);
  if (reason === undefined) {
    return {
      tag: 'proceed',
      val: { setHeaders: [], removeHeaders: [], rewritePath: undefined, consumerId: undefined, responseHeaders: [] },
    };
  }
  const body = JSON.stringify({ error: { code: 'blocked', message: reason } });
  return {
    tag: 'respond',
    val: {
      status: 403,
      headers: [{ name: 'content-type', value: 'application/json' }],
      body: encoder.encode(body),
    },
  };
}

export function onResponse(_request, _response) {
  return { tag: 'modify', val: { setHeaders: [], removeHeaders: [] } };
}

export function onLog(_entry) {}
