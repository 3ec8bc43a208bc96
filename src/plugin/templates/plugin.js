// {{name}}: a Gatehouse plugin. onRequest sets one request header from the
// plugin's config on the route, {"header": "x-hello", "value": "world"}
// (those are the defaults), before the request goes upstream.
// wit/plugin.wit is the contract: what each hook may answer and each host
// call does. Import specifiers carry the package version.
import { getJson } from 'gatehouse:plugin/config@0.2.0';

function settings() {
  try {
    return JSON.parse(getJson());
  } catch {
    return {};
  }
}

export function describe() {
  return { name: '{{name}}', version: '0.1.0', hooks: { onRequest: true } };
}

export function onRequest(_request) {
  const config = settings();
  const header = { name: config.header ?? 'x-hello', value: config.value ?? 'world' };
  return {
    tag: 'proceed',
    val: { setHeaders: [header], removeHeaders: [], rewritePath: undefined, consumerId: undefined, responseHeaders: [] },
  };
}

// Not declared in describe: the node never calls these two.
export function onResponse(_request, _response) {
  return { tag: 'modify', val: { setHeaders: [], removeHeaders: [] } };
}

export function onLog(_entry) {}
