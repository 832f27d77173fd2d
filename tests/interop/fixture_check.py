#!/usr/bin/env python3
"""Checks conformance_server.py's fixtures with the official Python SDK client.

    fixture_check.py --stdio            spawn conformance_server.py and talk stdio
    fixture_check.py URL                talk Streamable HTTP (e.g. through stdiopool)

Proves the fixture server itself is right (so a conformance failure through the
proxy is the proxy's), and, given a URL, that server->client requests
(sampling, elicitation), log and progress notifications, and an unsolicited
notifications/resources/updated all cross the transport. Exits non-zero naming
the first mismatch.
"""

from __future__ import annotations

import json
import sys
import warnings
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPDeprecationWarning

HERE = Path(__file__).resolve().parent
STEP_TIMEOUT_S = 20


class Mismatch(Exception):
    pass


def expect(cond: bool, what: str) -> None:
    if not cond:
        raise Mismatch(what)


class Observed:
    def __init__(self) -> None:
        self.logs: list[Any] = []
        self.updated: list[str] = []
        self.sampling: list[types.CreateMessageRequestParams] = []
        self.elicit: list[Any] = []

    async def on_log(self, params: types.LoggingMessageNotificationParams) -> None:
        self.logs.append(params.data)

    async def on_message(self, message: Any) -> None:
        if isinstance(message, types.ResourceUpdatedNotification):
            self.updated.append(str(message.params.uri))

    async def on_sampling(self, ctx: Any, params: types.CreateMessageRequestParams) -> types.CreateMessageResult:
        self.sampling.append(params)
        return types.CreateMessageResult(
            role="assistant", content=types.TextContent(type="text", text="sampled-ok"), model="check-model"
        )

    async def on_elicit(self, ctx: Any, params: Any) -> types.ElicitResult:
        self.elicit.append(params)
        return types.ElicitResult(action="accept", content={"username": "u", "email": "e@example.com"})


@asynccontextmanager
async def transport(target: str):
    if target == "--stdio":
        params = StdioServerParameters(command=sys.executable, args=[str(HERE / "conformance_server.py")])
        async with stdio_client(params) as streams:
            yield streams
    else:
        async with streamable_http_client(target) as streams:
            yield streams


async def check(target: str) -> list[str]:
    obs = Observed()
    passed: list[str] = []
    async with transport(target) as (read, write):
        async with ClientSession(
            read,
            write,
            sampling_callback=obs.on_sampling,
            elicitation_callback=obs.on_elicit,
            logging_callback=obs.on_log,
            message_handler=obs.on_message,
        ) as s:
            with anyio.fail_after(STEP_TIMEOUT_S):
                init = await s.initialize()
            caps = init.capabilities
            expect(caps.resources is not None and caps.resources.subscribe is True, "resources.subscribe capability")
            expect(caps.logging is not None and caps.completions is not None, "logging and completions capabilities")
            passed.append("initialize")

            with anyio.fail_after(STEP_TIMEOUT_S):
                await s.send_ping()
                tools = {t.name for t in (await s.list_tools()).tools}
            # The suite's 2025 tools (12), its 2026 input-required and capability
            # tools (9), the JSON Schema 2020-12 tool and the x-mcp-header tool.
            expect(
                len(tools) == 23
                and "test_elicitation_sep1330_enums" in tools
                and "test_missing_capability" in tools
                and "json_schema_2020_12_tool" in tools
                and "test_x_mcp_header" in tools,
                f"tools/list: {sorted(tools)}",
            )
            passed.append("tools/list")

            async def call(name: str, args: dict[str, Any] | None = None, **kw: Any) -> types.CallToolResult:
                with anyio.fail_after(STEP_TIMEOUT_S):
                    r = await s.call_tool(name, args or {}, **kw)
                assert isinstance(r, types.CallToolResult)
                return r

            r = await call("test_simple_text")
            expect(r.content[0].text == "This is a simple text response for testing.", "simple text")
            r = await call("test_image_content")
            expect(r.content[0].type == "image" and r.content[0].mime_type == "image/png", "image")
            r = await call("test_audio_content")
            expect(r.content[0].type == "audio" and r.content[0].mime_type == "audio/wav", "audio")
            r = await call("test_embedded_resource")
            expect(r.content[0].type == "resource", "embedded resource")
            r = await call("test_multiple_content_types")
            expect([c.type for c in r.content] == ["text", "image", "resource"], "mixed content")
            r = await call("test_error_handling")
            expect(r.is_error is True and r.content[0].text, "error tool")
            passed.append("content tools")

            with warnings.catch_warnings():
                warnings.simplefilter("ignore", MCPDeprecationWarning)
                with anyio.fail_after(STEP_TIMEOUT_S):
                    await s.set_logging_level("debug")
            await call("test_tool_with_logging")
            with anyio.fail_after(5):
                while len(obs.logs) < 3:
                    await anyio.sleep(0.02)
            expect(obs.logs[:3] == ["Tool execution started", "Tool processing data", "Tool execution completed"],
                   f"log notifications: {obs.logs}")
            passed.append("logging")

            progress: list[float] = []

            async def on_progress(p: float, total: float | None, message: str | None) -> None:
                progress.append(p)

            await call("test_tool_with_progress", progress_callback=on_progress)
            expect(progress == [0, 50, 100], f"progress notifications: {progress}")
            passed.append("progress")

            r = await call("test_sampling", {"prompt": "hello"})
            expect(len(obs.sampling) == 1 and r.content[0].text == "LLM response: sampled-ok", f"sampling: {r.content}")
            r = await call("test_elicitation", {"message": "who?"})
            expect(len(obs.elicit) == 1 and "action=accept" in r.content[0].text, f"elicitation: {r.content}")
            await call("test_elicitation_sep1034_defaults")
            props = obs.elicit[-1].requested_schema["properties"]
            expect(props["score"]["default"] == 95.5 and props["verified"]["default"] is True, "sep1034 defaults")
            await call("test_elicitation_sep1330_enums")
            props = obs.elicit[-1].requested_schema["properties"]
            expect(props["legacyEnum"]["enumNames"][0] == "Option One", "sep1330 legacy enumNames")
            expect("oneOf" in props["titledSingle"] and "anyOf" in props["titledMulti"]["items"], "sep1330 titled")
            passed.append("server->client requests")

            with anyio.fail_after(STEP_TIMEOUT_S):
                listed = {str(x.uri) for x in (await s.list_resources()).resources}
                expect({"test://static-text", "test://static-binary", "test://watched-resource"} <= listed, "resources")
                text = await s.read_resource("test://static-text")
                expect(text.contents[0].text.startswith("This is the content"), "static text")
                blob = await s.read_resource("test://static-binary")
                expect(blob.contents[0].blob and blob.contents[0].mime_type == "image/png", "static binary")
                tmpl = await s.read_resource("test://template/123/data")
                expect(json.loads(tmpl.contents[0].text)["id"] == "123", "template substitution")
                templates = (await s.list_resource_templates()).resource_templates
                expect(templates[0].uri_template == "test://template/{id}/data", "templates")
            passed.append("resources")

            with anyio.fail_after(STEP_TIMEOUT_S):
                await s.subscribe_resource("test://watched-resource")
            with anyio.fail_after(10):
                while not obs.updated:
                    await anyio.sleep(0.05)
            with anyio.fail_after(STEP_TIMEOUT_S):
                await s.unsubscribe_resource("test://watched-resource")
            expect(obs.updated[0] == "test://watched-resource", f"resources/updated: {obs.updated}")
            passed.append("subscribe -> resources/updated")

            with anyio.fail_after(STEP_TIMEOUT_S):
                prompts = {p.name for p in (await s.list_prompts()).prompts}
                # The suite's four 2025 prompts and its 2026 input-required prompt.
                expect(len(prompts) == 5 and "test_input_required_result_prompt" in prompts, f"prompts: {prompts}")
                p = await s.get_prompt("test_prompt_with_arguments", {"arg1": "A1", "arg2": "B2"})
                expect("arg1='A1'" in p.messages[0].content.text, "prompt args")
                p = await s.get_prompt("test_prompt_with_embedded_resource", {"resourceUri": "test://x"})
                expect(p.messages[0].content.type == "resource", "prompt resource")
                p = await s.get_prompt("test_prompt_with_image")
                expect(p.messages[0].content.type == "image", "prompt image")
                c = await s.complete(
                    types.PromptReference(type="ref/prompt", name="test_prompt_with_arguments"),
                    {"name": "arg1", "value": "par"},
                )
                expect(c.completion.values == ["paris", "park", "party"], f"completion: {c.completion.values}")
            passed.append("prompts + completion")
    return passed


def main() -> int:
    if len(sys.argv) != 2 or sys.argv[1] in ("-h", "--help"):
        print(__doc__, file=sys.stderr)
        return 2
    target = sys.argv[1]
    warnings.simplefilter("ignore", MCPDeprecationWarning)
    try:
        passed = anyio.run(check, target)
    except Mismatch as e:
        print(f"fixture_check: FAIL: {e}", file=sys.stderr)
        return 1
    except TimeoutError:
        print("fixture_check: FAIL: a step timed out", file=sys.stderr)
        return 1
    print(f"fixture_check: ok ({target}): " + ", ".join(passed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
