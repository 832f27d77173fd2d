"""A minimal stdio MCP server built with the official Python SDK (`mcp`),
exposing one tool, `echo`, for benches/run.sh.

Its start-up (interpreter, pydantic, the SDK's imports) is what a real Python
MCP server pays on every spawn, which is what spawn-per-request repeats on
every call and what the warm pool pays once.
"""

from mcp.server import MCPServer

server = MCPServer("py-echo")


@server.tool()
def echo(message: str) -> str:
    """Returns its message as text."""
    return message


if __name__ == "__main__":
    server.run("stdio")
