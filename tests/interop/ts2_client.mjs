#!/usr/bin/env node
// Drives an MCP Streamable HTTP endpoint with the official TypeScript SDK 2.x
// client (@modelcontextprotocol/client) in automatic version negotiation
// (`versionNegotiation: {mode: 'auto'}`): it probes `server/discover` and
// speaks 2026-07-28 when the server answers, else falls back to `initialize`.
//
//   ts2_client.mjs URL --tool NAME [--args JSON] --expect TEXT --era modern|legacy
//
// Connects, lists tools (NAME must be listed), calls NAME(JSON) (not an error,
// text contains TEXT), closes. --era says which era the server must have been
// spoken to in: the negotiated version is checked, and every POST is recorded
// (a fetch wrapper) to check on the wire that a modern conversation sent no
// `initialize` and no `Mcp-Session-Id`. Exit 0 when every check holds.
//
// The SDK is loaded from target/interop/node (tests/interop/install.sh), or
// from $STDIOPOOL_INTEROP_NODE_MODULES.

import { parseArgs } from 'node:util';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const nodeModules =
  process.env.STDIOPOOL_INTEROP_NODE_MODULES ??
  resolve(here, '../../target/interop/node/node_modules');
const { Client, StreamableHTTPClientTransport } = await import(
  pathToFileURL(join(nodeModules, '@modelcontextprotocol/client/dist/index.mjs')).href
);

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    tool: { type: 'string' },
    args: { type: 'string', default: '{}' },
    expect: { type: 'string' },
    era: { type: 'string' },
  },
});
const url = positionals[0];
const STEP_MS = 30_000;
const MODERN = '2026-07-28';

function fail(what) {
  console.log(`ts2_client: FAIL: ${what}`);
  process.exit(1);
}
const step = (p, what) =>
  Promise.race([p, new Promise((_, rej) => setTimeout(() => rej(new Error(`${what}: no answer within ${STEP_MS} ms`)), STEP_MS))]);

const posts = [];
const recordingFetch = async (input, init) => {
  const response = await fetch(input, init);
  if ((init?.method ?? 'GET') === 'POST') {
    const headers = new Headers(init.headers);
    posts.push({ body: String(init.body ?? ''), status: response.status, session: headers.get('mcp-session-id') });
  }
  return response;
};

try {
  const client = new Client({ name: 'stdiopool-interop-ts2', version: '0' }, { versionNegotiation: { mode: 'auto' } });
  await step(client.connect(new StreamableHTTPClientTransport(new URL(url), { fetch: recordingFetch })), 'connect');
  const version = client.getNegotiatedProtocolVersion();
  const modern = version === MODERN;
  if (values.era === 'modern' && !modern) fail(`expected ${MODERN}, negotiated ${version}`);
  if (values.era === 'legacy' && modern) fail(`expected a legacy version, negotiated ${version}`);
  const names = (await step(client.listTools(), 'tools/list')).tools.map((t) => t.name);
  if (!names.includes(values.tool)) fail(`tools/list has no ${values.tool} (got ${names})`);
  const result = await step(client.callTool({ name: values.tool, arguments: JSON.parse(values.args) }), 'tools/call');
  const text = (result.content ?? []).map((c) => c.text ?? JSON.stringify(c)).join('\n');
  if (result.isError) fail(`${values.tool} returned isError: ${text}`);
  if (!text.includes(values.expect)) fail(`${values.tool} result ${JSON.stringify(text)} lacks ${JSON.stringify(values.expect)}`);
  await client.close();
  if (!posts.length || !posts[0].body.includes('"server/discover"')) fail(`the first POST was not server/discover: ${JSON.stringify(posts[0])}`);
  if (modern) {
    if (posts[0].status !== 200) fail(`server/discover answered ${posts[0].status}`);
    const inits = posts.filter((p) => /"method"\s*:\s*"initialize"/.test(p.body));
    if (inits.length) fail(`an initialize reached the server in the modern era`);
    if (posts.some((p) => p.session)) fail(`a session id was sent in the modern era`);
    console.log(`ts2_client: ok: versionNegotiation auto: server/discover -> 200, spoke ${version} with no initialize and no session`);
  } else {
    console.log(`ts2_client: ok: versionNegotiation auto: server/discover -> ${posts[0].status}, fell back to initialize, negotiated ${version}`);
  }
} catch (e) {
  fail(`${e?.name ?? 'Error'}: ${e?.message ?? e}`);
}
