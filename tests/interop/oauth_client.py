"""The OAuth interop client: the official MCP Python SDK (mcp 2.x) with its own
OAuth client support reaches stdiopool's endpoint, which is an OAuth 2.1
resource server in front of a stdio MCP server.

    oauth_client.py URL ISSUER CLIENT_ID CLIENT_SECRET SCOPE --tool NAME --args JSON --expect TEXT
                    [--flow client_credentials|authorization_code]

Checks, in order:
  1. without a token, stdiopool answers 401 with a `WWW-Authenticate: Bearer`
     challenge whose `resource_metadata` points at its RFC 9728 metadata, and
     that metadata names URL as the resource and ISSUER as its authorization
     server (plain HTTP, no SDK: what any client sees first);
  2. the SDK's OAuth client as the httpx auth of `streamable_http_client` +
     `ClientSession`: it discovers the metadata from the 401, the
     authorization server's metadata from ISSUER, obtains a token for the
     resource (RFC 8707 `resource`), and the session initializes, lists tools
     and calls NAME(JSON), whose text must contain TEXT. The flow:
       client_credentials  `ClientCredentialsOAuthProvider` with CLIENT_ID and
                           CLIENT_SECRET (registered at the server beforehand);
       authorization_code  `OAuthClientProvider`: dynamic client registration,
                           then the authorization-code grant with PKCE; the
                           "browser" is an HTTP client that follows the
                           authorization server's redirects (it approves at
                           once) up to the redirect URI, whose code, state and
                           iss go back to the SDK (CLIENT_ID/SECRET unused);
  3. the SDK's token is a JWT, the first MCP request was refused for want of
     it and every request after it was authorized (pooled mode's 405 to the
     GET stream is not a refusal).

Exits 0 when every check holds; otherwise prints the first mismatch, exits 1.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from typing import Any

import anyio
import httpx2
from mcp import ClientSession
from mcp.client.auth.extensions.client_credentials import ClientCredentialsOAuthProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.client.auth import OAuthClientProvider
from mcp.shared.auth import AuthorizationCodeResult, OAuthClientInformationFull, OAuthClientMetadata, OAuthToken

STEP_TIMEOUT_S = 30
REDIRECT_URI = "http://localhost:3030/callback"


class Mismatch(Exception):
    pass


def expect(cond: bool, what: str) -> None:
    if not cond:
        raise Mismatch(what)


class MemoryStorage:
    """Token storage in memory (the SDK's TokenStorage protocol)."""

    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None
        self.client_info: OAuthClientInformationFull | None = None

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client_info

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client_info = client_info


async def check_challenge(url: str, issuer: str) -> str:
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "oauth-probe", "version": "0"}},
    }
    headers = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
    async with httpx2.AsyncClient(timeout=STEP_TIMEOUT_S) as http:
        r = await http.post(url, json=body, headers=headers)
        expect(r.status_code == 401, f"no token: expected 401, got {r.status_code} {r.text}")
        challenge = r.headers.get("www-authenticate", "")
        m = re.search(r'resource_metadata="([^"]+)"', challenge)
        expect(challenge.lower().startswith("bearer") and m is not None, f"no resource_metadata in {challenge!r}")
        assert m is not None
        meta = (await http.get(m.group(1))).json()
        expect(meta.get("resource") == url, f"metadata resource {meta.get('resource')!r} != {url!r}")
        expect(issuer in meta.get("authorization_servers", []), f"metadata names no {issuer}: {meta}")
        r = await http.post(url, json=body, headers={**headers, "authorization": "Bearer not.a.token"})
        expect(r.status_code == 401, f"bad token: expected 401, got {r.status_code}")
        expect('error="invalid_token"' in r.headers.get("www-authenticate", ""), "bad token: no invalid_token")
    return m.group(1)


class Browser:
    """Stands in for the user's browser: follows the authorization server's
    redirects (login and consent are approved at once there) until it is
    sent to the redirect URI, and hands that redirect's parameters back."""

    def __init__(self) -> None:
        self.result: AuthorizationCodeResult | None = None

    async def open(self, url: str) -> None:
        from urllib.parse import parse_qs, urljoin, urlparse

        async with httpx2.AsyncClient(timeout=STEP_TIMEOUT_S, follow_redirects=False) as http:
            for _ in range(10):
                r = await http.get(url)
                location = r.headers.get("location")
                expect(r.status_code in (302, 303) and location, f"authorization: {r.status_code} {r.text[:300]}")
                assert location is not None
                url = urljoin(url, location)
                if url.startswith(REDIRECT_URI):
                    q = {k: v[0] for k, v in parse_qs(urlparse(url).query).items()}
                    expect("code" in q, f"authorization refused: {q}")
                    self.result = AuthorizationCodeResult(code=q["code"], state=q.get("state"), iss=q.get("iss"))
                    return
        raise Mismatch("authorization: too many redirects")

    async def callback(self) -> AuthorizationCodeResult:
        expect(self.result is not None, "no authorization response")
        assert self.result is not None
        return self.result


def result_text(result: Any) -> str:
    return "\n".join(getattr(c, "text", "") or "" for c in (getattr(result, "content", None) or []))


async def run(args: argparse.Namespace) -> str:
    with anyio.fail_after(STEP_TIMEOUT_S):
        metadata_url = await check_challenge(args.url, args.issuer)

    storage = MemoryStorage()
    auth: httpx2.Auth
    if args.flow == "client_credentials":
        auth = ClientCredentialsOAuthProvider(
            server_url=args.url,
            storage=storage,
            client_id=args.client_id,
            client_secret=args.client_secret,
            scope=args.scope,
            issuer=args.issuer,
        )
    else:
        browser = Browser()
        auth = OAuthClientProvider(
            server_url=args.url,
            client_metadata=OAuthClientMetadata(
                client_name="stdiopool interop",
                redirect_uris=[REDIRECT_URI],
                grant_types=["authorization_code", "refresh_token"],
                response_types=["code"],
            ),
            storage=storage,
            redirect_handler=browser.open,
            callback_handler=browser.callback,
        )
    statuses: list[tuple[str, int]] = []

    async def on_response(response: httpx2.Response) -> None:
        if response.request.url == args.url:
            statuses.append((response.request.method, response.status_code))

    async with httpx2.AsyncClient(auth=auth, timeout=STEP_TIMEOUT_S, event_hooks={"response": [on_response]}) as http:
        async with streamable_http_client(args.url, http_client=http) as (read, write):
            async with ClientSession(read, write) as session:
                with anyio.fail_after(STEP_TIMEOUT_S):
                    await session.initialize()
                with anyio.fail_after(STEP_TIMEOUT_S):
                    names = [t.name for t in (await session.list_tools()).tools]
                expect(args.tool in names, f"tools/list has no {args.tool!r} (got {names})")
                with anyio.fail_after(STEP_TIMEOUT_S):
                    result = await session.call_tool(args.tool, json.loads(args.args))
                text = result_text(result)
                expect(not getattr(result, "is_error", False), f"{args.tool} returned isError: {text!r}")
                expect(args.expect in text, f"{args.tool} result {text!r} lacks {args.expect!r}")

    expect(storage.tokens is not None, "the SDK stored no token")
    assert storage.tokens is not None
    token = storage.tokens.access_token
    expect(token.count(".") == 2, "the access token is not a JWT")
    expect(statuses[:1] == [("POST", 401)], f"the first MCP request was not refused for want of a token: {statuses}")
    # A 405 to the GET stream is pooled mode having none (docs/PROXY.md), not a refusal.
    refused = [(m, s) for m, s in statuses[1:] if s >= 400 and (m, s) != ("GET", 405)]
    expect(not refused, f"requests after the token were refused: {statuses}")

    return (
        f"{args.flow}: 401 -> {metadata_url} -> token from {args.issuer} -> tools/list, {args.tool} ok "
        f"(statuses {statuses})"
    )


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("url")
    p.add_argument("issuer")
    p.add_argument("client_id")
    p.add_argument("client_secret")
    p.add_argument("scope")
    p.add_argument("--tool", required=True)
    p.add_argument("--args", default="{}")
    p.add_argument("--expect", required=True)
    p.add_argument("--flow", choices=["client_credentials", "authorization_code"], default="client_credentials")
    args = p.parse_args()
    try:
        summary = anyio.run(run, args)
    except Mismatch as e:
        print(f"MISMATCH: {e}")
        return 1
    print(f"ok: {summary}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
