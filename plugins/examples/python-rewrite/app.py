"""Example plugin (Python, componentize-py): rewrites request paths by prefix.

Config: {"rules": [{"from": "/v1/", "to": "/api/v2/"}]}; the first rule whose
prefix matches rewrites the path sent upstream, and the plugin adds
`x-rewritten-from` with the original path. Requests no rule matches go on
unchanged.
"""

import json

import wit_world
from wit_world.imports import config
from wit_world.imports.types import (
    Header,
    Hooks,
    PluginInfo,
    RequestAction_Proceed,
    RequestChanges,
    ResponseAction_Modify,
    ResponseChanges,
)


def rewrite(rules, path):
    for rule in rules:
        prefix, target = rule.get("from", ""), rule.get("to", "")
        if prefix and path.startswith(prefix):
            return target + path[len(prefix):]
    return None


class WitWorld(wit_world.WitWorld):
    def describe(self):
        return PluginInfo(name="python-rewrite", version="0.1.0", hooks=Hooks.ON_REQUEST)

    def on_request(self, request):
        try:
            rules = json.loads(config.get_json()).get("rules", [])
        except ValueError:
            rules = []
        new_path = rewrite(rules, request.path)
        headers = [] if new_path is None else [Header(name="x-rewritten-from", value=request.path)]
        return RequestAction_Proceed(
            RequestChanges(
                set_headers=headers,
                remove_headers=[],
                rewrite_path=new_path,
                consumer_id=None,
                response_headers=[],
            )
        )

    def on_response(self, request, response):
        return ResponseAction_Modify(ResponseChanges(set_headers=[], remove_headers=[]))

    def on_log(self, entry):
        pass
