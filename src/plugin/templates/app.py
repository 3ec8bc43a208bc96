"""{{name}}: a Gatehouse plugin.

on_request sets one request header from the plugin's config on the route,
{"header": "x-hello", "value": "world"} (those are the defaults), before the
request goes upstream. wit/plugin.wit is the contract: what each hook may
answer and each host call does.
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


class WitWorld(wit_world.WitWorld):
    def describe(self):
        return PluginInfo(name="{{name}}", version="0.1.0", hooks=Hooks.ON_REQUEST)

    def on_request(self, request):
        try:
            settings = json.loads(config.get_json())
        except ValueError:
            settings = {}
        header = Header(name=settings.get("header", "x-hello"), value=settings.get("value", "world"))
        return RequestAction_Proceed(
            RequestChanges(
                set_headers=[header],
                remove_headers=[],
                rewrite_path=None,
                consumer_id=None,
                response_headers=[],
            )
        )

    # Not declared in describe: the node never calls these two.
    def on_response(self, request, response):
        return ResponseAction_Modify(ResponseChanges(set_headers=[], remove_headers=[]))

    def on_log(self, entry):
        pass
