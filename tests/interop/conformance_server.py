#!/usr/bin/env python3
"""A stdio MCP server implementing the fixtures of @modelcontextprotocol/conformance.

The conformance suite's server scenarios call named tools, resources and
prompts and check their shapes (see the scenario texts in
target/interop/node/node_modules/@modelcontextprotocol/conformance/dist/index.js).
The suite only speaks Streamable HTTP, so this server speaks stdio and
stdiopool is put in front of it: every scenario then exercises the proxy
end to end, including server->client requests (sampling, elicitation),
logging and progress notifications.

Built on the official Python SDK's low-level `Server` (mcp 2.x) so that
results and elicitation schemas go on the wire exactly as written here.

Run: `python conformance_server.py` (stdio; logs go to stderr only).
`python conformance_server.py --http PORT` serves the same fixtures with the
SDK's own Streamable HTTP transport on 127.0.0.1:PORT, the reference the
proxied results are compared with (run.sh --self-test).
"""

from __future__ import annotations

import json
import logging
import sys
import warnings
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import mcp_types as types
from mcp.server.lowlevel import Server
from mcp.server.stdio import stdio_server
from mcp.shared.exceptions import MCPDeprecationWarning, MCPError

# 1x1 red PNG and a minimal WAV: tiny, valid payloads for the media fixtures.
PNG_1X1 = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=="
WAV_TINY = "UklGRiYAAABXQVZFZm10IBAAAAABAAEAQB8AAAB9AAACABAAZGF0YQIAAAA="

LOG_LEVELS = ["debug", "info", "notice", "warning", "error", "critical", "alert", "emergency"]
WATCHED_URI = "test://watched-resource"
# How often a subscribed watched resource changes (and a resources/updated is sent).
WATCH_PERIOD_S = 1.0

NO_ARGS: dict[str, Any] = {"type": "object", "properties": {}}


MRTR_TOOLS = ("elicitation", "sampling", "list_roots", "request_state", "multiple_inputs", "multi_round",
              "tampered_state", "capabilities")


def _form(message: str, field: str, kind: str = "string") -> dict[str, Any]:
    schema = {"type": "object", "properties": {field: {"type": kind}}, "required": [field]}
    return {"message": message, "requestedSchema": schema}


def _sample(text: str, max_tokens: int) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": {"type": "text", "text": text}}], "maxTokens": max_tokens}


async def _ask(ctx: Any, key: str, method: str, params: dict[str, Any]) -> dict[str, Any]:
    """A server request under the id `key`, answered by the client (MRTR through stdiopool)."""
    # The SDK's typed helpers mint their own ids; its dispatcher takes a caller's id (CallOptions
    # "request_id") but only through the connection's outbound channel (stdio has just the one).
    outbound = ctx.session._connection.outbound
    return await outbound.send_raw_request(method, params, {"request_id": key})


async def _mrtr_tool(ctx: Any, which: str) -> dict[str, Any]:
    if which in ("elicitation", "request_state", "tampered_state"):
        key = {"elicitation": "user_name", "request_state": "confirm", "tampered_state": "confirm_tamper"}[which]
        r = await _ask(ctx, key, "elicitation/create", _form("What is your name?", "name"))
        ok = "state-ok: " if which != "elicitation" else ""
        return {"content": [_text(f"{ok}Hello, {(r.get('content') or {}).get('name', '')}!")]}
    if which in ("sampling", "capabilities"):
        key = "capital_question" if which == "sampling" else "capability_sample"
        r = await _ask(ctx, key, "sampling/createMessage", _sample("What is the capital of France?", 100))
        return {"content": [_text(f"LLM response: {(r.get('content') or {}).get('text', '')}")]}
    if which == "list_roots":
        r = await _ask(ctx, "client_roots", "roots/list", {})
        return {"content": [_text("Roots: " + ", ".join(x.get("uri", "") for x in r.get("roots", [])))]}
    if which == "multiple_inputs":
        answers: dict[str, Any] = {}

        async def one(key: str, method: str, params: dict[str, Any]) -> None:
            answers[key] = await _ask(ctx, key, method, params)

        async with anyio.create_task_group() as tg:  # asked together: one input_required round
            tg.start_soon(one, "user_name", "elicitation/create", _form("What is your name?", "name"))
            tg.start_soon(one, "greeting", "sampling/createMessage", _sample("Generate a greeting", 50))
            tg.start_soon(one, "client_roots", "roots/list", {})
        return {"content": [_text(f"Got all inputs: {sorted(answers)}")]}
    if which == "multi_round":
        name = await _ask(ctx, "step1", "elicitation/create", _form("Step 1: What is your name?", "name"))
        color = await _ask(ctx, "step2", "elicitation/create", _form("Step 2: What is your favorite color?", "color"))
        return {"content": [_text(f"Done: {name.get('content')} {color.get('content')}")]}
    raise MCPError(code=-32602, message=f"Unknown tool: test_input_required_result_{which}")


def _tool(name: str, description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"name": name, "description": description, "inputSchema": schema or NO_ARGS}


TOOLS = [
    _tool("test_simple_text", "Returns simple text content"),
    _tool("test_image_content", "Returns image content"),
    _tool("test_audio_content", "Returns audio content"),
    _tool("test_embedded_resource", "Returns an embedded resource"),
    _tool("test_multiple_content_types", "Returns text, image and resource content"),
    _tool("test_tool_with_logging", "Sends three log notifications while it runs"),
    _tool("test_tool_with_progress", "Sends progress 0, 50, 100 of 100 to the request's progress token"),
    _tool("test_error_handling", "Always fails with isError: true"),
    _tool(
        "test_sampling",
        "Asks the client for an LLM completion (sampling/createMessage)",
        {
            "type": "object",
            "properties": {"prompt": {"type": "string", "description": "The prompt to send to the LLM"}},
            "required": ["prompt"],
        },
    ),
    _tool(
        "test_elicitation",
        "Asks the client for user input (elicitation/create)",
        {
            "type": "object",
            "properties": {"message": {"type": "string", "description": "The message to show the user"}},
            "required": ["message"],
        },
    ),
    _tool("test_elicitation_sep1034_defaults", "Elicitation whose schema has defaults for every primitive type"),
    _tool("test_elicitation_sep1330_enums", "Elicitation with all five enum schema variants"),
    # MCP 2026-07-28 suite (0.2.0-alpha.12): this 2025 server asks the client the 2025 way, with
    # its request ids chosen as the suite's inputRequests keys; stdiopool turns each ask into an
    # input_required result keyed by the server request's id (docs/ERAS.md, "Input from the client").
    # The suite's json-schema-2020-12 scenario: a 2020-12 schema must reach the client unchanged.
    _tool("json_schema_2020_12_tool", "Tool with JSON Schema 2020-12 features", {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "$defs": {"address": {"$anchor": "addressDef", "type": "object",
                              "properties": {"street": {"type": "string"}, "city": {"type": "string"}}}},
        "properties": {"name": {"type": "string"}, "address": {"$ref": "#/$defs/address"},
                       "contactMethod": {"type": "string", "enum": ["phone", "email"]},
                       "phone": {"type": "string"}, "email": {"type": "string"}},
        "allOf": [{"anyOf": [{"required": ["phone"]}, {"required": ["email"]}]}],
        "if": {"properties": {"contactMethod": {"const": "phone"}}, "required": ["contactMethod"]},
        "then": {"required": ["phone"]},
        "else": {"required": ["email"]},
        "additionalProperties": False,
    }),
    _tool("test_missing_capability", "Asks the client for sampling (a client without it gets -32021)"),
    # The suite's http-custom-header-server-validation scenario: a tool whose string argument is
    # mirrored into an `Mcp-Param-Region` header (`x-mcp-header`, the specification's example), for
    # the proxy to check against the body (docs/ERAS.md, "`Mcp-Param-*` headers").
    _tool("test_x_mcp_header", "Runs a query in a region; the region travels as Mcp-Param-Region", {
        "type": "object",
        "properties": {
            "region": {"type": "string", "description": "The region to run in", "x-mcp-header": "Region"},
            "query": {"type": "string", "description": "The query to run"},
        },
        "required": ["region"],
    }),
    *(_tool(f"test_input_required_result_{n}", f"Asks the client ({n}) while it runs") for n in MRTR_TOOLS),
]

RESOURCES = [
    {
        "uri": "test://static-text",
        "name": "static-text",
        "title": "Static Text Resource",
        "description": "A static text resource",
        "mimeType": "text/plain",
    },
    {
        "uri": "test://static-binary",
        "name": "static-binary",
        "title": "Static Binary Resource",
        "description": "A static binary resource (PNG)",
        "mimeType": "image/png",
    },
    {
        "uri": WATCHED_URI,
        "name": "watched-resource",
        "title": "Watched Resource",
        "description": "Changes while subscribed; each change sends notifications/resources/updated",
        "mimeType": "text/plain",
    },
]

TEMPLATES = [
    {
        "uriTemplate": "test://template/{id}/data",
        "name": "template",
        "title": "Resource Template",
        "description": "A resource template with parameter substitution",
        "mimeType": "application/json",
    }
]

PROMPTS = [
    {"name": "test_simple_prompt", "title": "Simple Test Prompt", "description": "A prompt without arguments"},
    {
        "name": "test_prompt_with_arguments",
        "title": "Prompt With Arguments",
        "description": "A prompt with two required arguments",
        "arguments": [
            {"name": "arg1", "description": "First test argument", "required": True},
            {"name": "arg2", "description": "Second test argument", "required": True},
        ],
    },
    {
        "name": "test_prompt_with_embedded_resource",
        "title": "Prompt With Embedded Resource",
        "description": "A prompt that embeds a resource",
        "arguments": [{"name": "resourceUri", "description": "URI of the resource to embed", "required": True}],
    },
    {"name": "test_prompt_with_image", "title": "Prompt With Image", "description": "A prompt with image content"},
    {"name": "test_input_required_result_prompt", "description": "Asks the client for context (elicitation)"},
]

# Completion candidates per argument name; the suite only checks the shape.
COMPLETIONS = {
    "arg1": ["paris", "park", "party", "test", "testValue1"],
    "arg2": ["testValue2", "value"],
    "id": ["1", "123", "42"],
    "resourceUri": ["test://static-text", "test://static-binary", WATCHED_URI],
}


def _text(text: str) -> dict[str, Any]:
    return {"type": "text", "text": text}


class Fixture:
    """Per-connection state: the client's log level and resource subscriptions."""

    def __init__(self, tg: anyio.abc.TaskGroup) -> None:
        self.tg = tg
        self.min_level = "debug"
        self.subscriptions: dict[str, anyio.CancelScope] = {}
        self.watched_version = 0

    def wants(self, level: str) -> bool:
        return LOG_LEVELS.index(level) >= LOG_LEVELS.index(self.min_level)

    async def log(self, ctx: Any, level: str, data: Any) -> None:
        if self.wants(level):
            await ctx.session.send_notification(
                types.LoggingMessageNotification(
                    params=types.LoggingMessageNotificationParams(
                        level=level, data=data, logger="conformance-server"
                    )
                ),
                related_request_id=ctx.request_id,
            )

    async def watch(self, session: Any, uri: str, scope: anyio.CancelScope) -> None:
        with scope:
            while True:
                await anyio.sleep(WATCH_PERIOD_S)
                self.watched_version += 1
                await session.send_resource_updated(uri)


@asynccontextmanager
async def lifespan(_server: Server[Any]) -> AsyncIterator[Fixture]:
    async with anyio.create_task_group() as tg:
        yield Fixture(tg)
        tg.cancel_scope.cancel()


async def list_tools(ctx: Any, params: Any) -> dict[str, Any]:
    return {"tools": TOOLS}


async def call_tool(ctx: Any, params: types.CallToolRequestParams) -> dict[str, Any]:
    fx: Fixture = ctx.lifespan_context
    args = params.arguments or {}
    name = params.name
    if name == "test_simple_text":
        return {"content": [_text("This is a simple text response for testing.")]}
    if name == "test_image_content":
        return {"content": [{"type": "image", "data": PNG_1X1, "mimeType": "image/png"}]}
    if name == "test_audio_content":
        return {"content": [{"type": "audio", "data": WAV_TINY, "mimeType": "audio/wav"}]}
    if name == "test_embedded_resource":
        return {
            "content": [
                {
                    "type": "resource",
                    "resource": {
                        "uri": "test://embedded-resource",
                        "mimeType": "text/plain",
                        "text": "This is an embedded resource content.",
                    },
                }
            ]
        }
    if name == "test_multiple_content_types":
        return {
            "content": [
                _text("Multiple content types test:"),
                {"type": "image", "data": PNG_1X1, "mimeType": "image/png"},
                {
                    "type": "resource",
                    "resource": {
                        "uri": "test://mixed-content-resource",
                        "mimeType": "application/json",
                        "text": json.dumps({"test": "data", "value": 123}),
                    },
                },
            ]
        }
    if name == "test_tool_with_logging":
        for i, msg in enumerate(["Tool execution started", "Tool processing data", "Tool execution completed"]):
            if i:
                await anyio.sleep(0.05)
            await fx.log(ctx, "info", msg)
        return {"content": [_text("Tool with logging executed successfully")]}
    if name == "test_tool_with_progress":
        # report_progress targets this request's progressToken (a no-op without one).
        for i, progress in enumerate([0, 50, 100]):
            if i:
                await anyio.sleep(0.05)
            await ctx.session.report_progress(progress, 100, f"Completed step {progress} of 100")
        return {"content": [_text("Progress reported: 0, 50, 100 of 100")]}
    if name == "test_error_handling":
        return {"isError": True, "content": [_text("This tool intentionally returns an error for testing")]}
    if name == "test_sampling":
        result = await ctx.session.create_message(
            [types.SamplingMessage(role="user", content=types.TextContent(type="text", text=str(args.get("prompt", ""))))],
            max_tokens=100,
            related_request_id=ctx.request_id,
        )
        content = result.content
        text = getattr(content, "text", None) or "No response"
        return {"content": [_text(f"LLM response: {text}")]}
    if name == "json_schema_2020_12_tool":
        return {"content": [_text(f"Received: {json.dumps(args, sort_keys=True)}")]}
    if name == "test_x_mcp_header":
        return {"content": [_text(f"Ran {args.get('query', '')!r} in {args.get('region')!r}")]}
    if name == "test_missing_capability":
        r = await _ask(ctx, "missing_sampling", "sampling/createMessage", _sample("Say hi", 10))
        return {"content": [_text(f"LLM response: {(r.get('content') or {}).get('text', '')}")]}
    if name.startswith("test_input_required_result_"):
        return await _mrtr_tool(ctx, name.removeprefix("test_input_required_result_"))
    if name == "test_elicitation":
        schema = {
            "type": "object",
            "properties": {
                "username": {"type": "string", "description": "User's response"},
                "email": {"type": "string", "description": "User's email address"},
            },
            "required": ["username", "email"],
        }
        return await _elicit(ctx, str(args.get("message", "")), schema, "User response")
    if name == "test_elicitation_sep1034_defaults":
        schema = {
            "type": "object",
            "properties": {
                "name": {"type": "string", "description": "User name", "default": "John Doe"},
                "age": {"type": "integer", "description": "User age", "default": 30},
                "score": {"type": "number", "description": "User score", "default": 95.5},
                "status": {
                    "type": "string",
                    "description": "User status",
                    "enum": ["active", "inactive", "pending"],
                    "default": "active",
                },
                "verified": {"type": "boolean", "description": "Verification status", "default": True},
            },
            "required": [],
        }
        return await _elicit(ctx, "Please review and update the form fields with defaults", schema, "Elicitation completed")
    if name == "test_elicitation_sep1330_enums":
        titled = [("value1", "First"), ("value2", "Second"), ("value3", "Third")]
        schema = {
            "type": "object",
            "properties": {
                "untitledSingle": {
                    "type": "string",
                    "description": "Select one option",
                    "enum": ["option1", "option2", "option3"],
                },
                "titledSingle": {
                    "type": "string",
                    "description": "Select one option with titles",
                    "oneOf": [{"const": v, "title": f"{t} Option"} for v, t in titled],
                },
                "legacyEnum": {
                    "type": "string",
                    "description": "Select one option (legacy enumNames)",
                    "enum": ["opt1", "opt2", "opt3"],
                    "enumNames": ["Option One", "Option Two", "Option Three"],
                },
                "untitledMulti": {
                    "type": "array",
                    "description": "Select several options",
                    "minItems": 1,
                    "maxItems": 3,
                    "items": {"type": "string", "enum": ["option1", "option2", "option3"]},
                },
                "titledMulti": {
                    "type": "array",
                    "description": "Select several options with titles",
                    "minItems": 1,
                    "maxItems": 3,
                    "items": {"anyOf": [{"const": v, "title": f"{t} Choice"} for v, t in titled]},
                },
            },
            "required": [],
        }
        return await _elicit(ctx, "Please select options from the enum fields", schema, "Elicitation completed")
    return {"isError": True, "content": [_text(f"Unknown tool: {name}")]}


async def _elicit(ctx: Any, message: str, schema: dict[str, Any], label: str) -> dict[str, Any]:
    result = await ctx.session.elicit_form(message, schema, related_request_id=ctx.request_id)
    content = json.dumps(result.content or {}, sort_keys=True)
    return {"content": [_text(f"{label}: action={result.action}, content={content}")]}


async def list_resources(ctx: Any, params: Any) -> dict[str, Any]:
    return {"resources": RESOURCES}


async def list_resource_templates(ctx: Any, params: Any) -> dict[str, Any]:
    return {"resourceTemplates": TEMPLATES}


async def read_resource(ctx: Any, params: types.ReadResourceRequestParams) -> dict[str, Any]:
    fx: Fixture = ctx.lifespan_context
    uri = str(params.uri)
    if uri == "test://static-text":
        contents = {"uri": uri, "mimeType": "text/plain", "text": "This is the content of the static text resource."}
    elif uri == "test://static-binary":
        contents = {"uri": uri, "mimeType": "image/png", "blob": PNG_1X1}
    elif uri == WATCHED_URI:
        contents = {"uri": uri, "mimeType": "text/plain", "text": f"Watched resource content, version {fx.watched_version}"}
    elif uri.startswith("test://template/") and uri.endswith("/data") and len(uri) > len("test://template//data"):
        item = uri[len("test://template/") : -len("/data")]
        body = json.dumps({"id": item, "templateTest": True, "data": f"Data for ID: {item}"})
        contents = {"uri": uri, "mimeType": "application/json", "text": body}
    else:
        # -32002 is MCP's "resource not found".
        raise MCPError(code=-32002, message="Resource not found", data={"uri": uri})
    return {"contents": [contents]}


async def subscribe(ctx: Any, params: types.SubscribeRequestParams) -> dict[str, Any]:
    fx: Fixture = ctx.lifespan_context
    uri = str(params.uri)
    if uri == WATCHED_URI and uri not in fx.subscriptions:
        scope = anyio.CancelScope()
        fx.subscriptions[uri] = scope
        fx.tg.start_soon(fx.watch, ctx.session, uri, scope)
    return {}


async def unsubscribe(ctx: Any, params: types.UnsubscribeRequestParams) -> dict[str, Any]:
    fx: Fixture = ctx.lifespan_context
    scope = fx.subscriptions.pop(str(params.uri), None)
    if scope is not None:
        scope.cancel()
    return {}


async def list_prompts(ctx: Any, params: Any) -> dict[str, Any]:
    return {"prompts": PROMPTS}


async def get_prompt(ctx: Any, params: types.GetPromptRequestParams) -> dict[str, Any]:
    args = params.arguments or {}
    name = params.name
    if name == "test_simple_prompt":
        messages = [{"role": "user", "content": _text("This is a simple prompt for testing.")}]
    elif name == "test_prompt_with_arguments":
        arg1, arg2 = args.get("arg1", ""), args.get("arg2", "")
        messages = [{"role": "user", "content": _text(f"Prompt with arguments: arg1='{arg1}', arg2='{arg2}'")}]
    elif name == "test_prompt_with_embedded_resource":
        uri = args.get("resourceUri", "test://static-text")
        messages = [
            {
                "role": "user",
                "content": {
                    "type": "resource",
                    "resource": {"uri": uri, "mimeType": "text/plain", "text": "Embedded resource content for testing."},
                },
            },
            {"role": "user", "content": _text("Please process the embedded resource above.")},
        ]
    elif name == "test_input_required_result_prompt":
        r = await _ask(ctx, "user_context", "elicitation/create", _form("What context should the prompt use?", "context"))
        context = (r.get("content") or {}).get("context", "")
        messages = [{"role": "user", "content": _text(f"Use this context: {context}")}]
    elif name == "test_prompt_with_image":
        messages = [
            {"role": "user", "content": {"type": "image", "data": PNG_1X1, "mimeType": "image/png"}},
            {"role": "user", "content": _text("Please analyze the image above.")},
        ]
    else:
        raise MCPError(code=-32602, message=f"Unknown prompt: {name}")
    return {"messages": messages}


async def complete(ctx: Any, params: types.CompleteRequestParams) -> dict[str, Any]:
    candidates = COMPLETIONS.get(params.argument.name, [])
    values = [c for c in candidates if c.startswith(params.argument.value)]
    return {"completion": {"values": values, "total": len(values), "hasMore": False}}


async def set_level(ctx: Any, params: types.SetLevelRequestParams) -> dict[str, Any]:
    fx: Fixture = ctx.lifespan_context
    fx.min_level = str(params.level)
    return {}


def build() -> Server[Fixture]:
    # Logging is deprecated in the 2026-07-28 protocol; the suite targets
    # 2025-11-25, where it is current, so the SDK's warning is noise here.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MCPDeprecationWarning)
        return Server(
            "stdiopool-conformance-fixture",
            version="1.0.0",
            lifespan=lifespan,
            on_list_tools=list_tools,
            on_call_tool=call_tool,
            on_list_resources=list_resources,
            on_list_resource_templates=list_resource_templates,
            on_read_resource=read_resource,
            on_subscribe_resource=subscribe,
            on_unsubscribe_resource=unsubscribe,
            on_list_prompts=list_prompts,
            on_get_prompt=get_prompt,
            on_completion=complete,
            on_set_logging_level=set_level,
        )


async def main() -> None:
    server = build()
    async with stdio_server() as (read, write):
        await server.run(read, write, server.create_initialization_options())


if __name__ == "__main__":
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING)
    warnings.simplefilter("ignore", MCPDeprecationWarning)
    if len(sys.argv) == 3 and sys.argv[1] == "--http":
        import uvicorn

        uvicorn.run(build().streamable_http_app(), host="127.0.0.1", port=int(sys.argv[2]), log_level="warning")
    elif len(sys.argv) == 1:
        anyio.run(main)
    else:
        sys.exit("usage: conformance_server.py [--http PORT]")
