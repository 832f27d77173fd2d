#!/usr/bin/env node
// Drives an MCP Streamable HTTP endpoint with the official TypeScript SDK (1.x).
//
//   ts_client.mjs URL --tool NAME [--args JSON] --expect TEXT
//                 [--server-requests] [--after-delete-status 404]
//
// With StreamableHTTPClientTransport: initialize, ping, list tools (NAME must be
// listed), call NAME(JSON) (not an error, text contains TEXT), then
// terminateSession(): the DELETE must succeed (the SDK throws otherwise, and
// tolerates 405), and a request on the old session id must then get 404.
//
// --server-requests (session mode, server-everything only): declare the `roots`
// capability; the server's own roots/list request must reach us, our answer must
// reach the server (its notifications/message reports the count, get-roots-list
// names our root), and progress notifications must arrive.
//
// The SDK is loaded from target/interop/node (tests/interop/install.sh), or
// from $STDIOPOOL_INTEROP_NODE_MODULES. Exit 0 when every check holds.

import { parseArgs } from 'node:util';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const nodeModules =
  process.env.STDIOPOOL_INTEROP_NODE_MODULES ??
  resolve(here, '../../target/interop/node/node_modules');
const sdk = (p) => import(pathToFileURL(join(nodeModules, '@modelcontextprotocol/sdk/dist/esm', p)).href);

const { Client } = await sdk('client/index.js');
const { StreamableHTTPClientTransport } = await sdk('client/streamableHttp.js');
const { ListRootsRequestSchema, LoggingMessageNotificationSchema } = await sdk('types.js');

const STEP_TIMEOUT_MS = 30_000;
const ROOT_URI = 'file:///tmp/stdiopool-interop-root';

const { values: opt, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    tool: { type: 'string' },
    args: { type: 'string', default: '{}' },
    expect: { type: 'string' },
    'server-requests': { type: 'boolean', default: false },
    'after-delete-status': { type: 'string', default: '404' },
  },
});
if (positionals.length !== 1 || !opt.tool || opt.expect === undefined) {
  console.error('usage: ts_client.mjs URL --tool NAME [--args JSON] --expect TEXT [--server-requests]');
  process.exit(2);
}
const url = new URL(positionals[0]);

class Mismatch extends Error {}
const expect = (cond, what) => {
  if (!cond) throw new Mismatch(what);
};
const textOf = (result) =>
  (result?.content ?? []).map((c) => (c.type === 'text' ? c.text : JSON.stringify(c))).join('\n');
const waitFor = async (pred, ms, what) => {
  const deadline = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > deadline) throw new Mismatch(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
};
const reqOpts = { timeout: STEP_TIMEOUT_MS };

async function main() {
  const serverRequests = opt['server-requests'];
  const transport = new StreamableHTTPClientTransport(url);
  const client = new Client(
    { name: 'stdiopool-interop-ts', version: '1.0.0' },
    { capabilities: serverRequests ? { roots: { listChanged: true } } : {} },
  );
  let rootsAsked = 0;
  const logs = [];
  if (serverRequests) {
    client.setRequestHandler(ListRootsRequestSchema, async () => {
      rootsAsked += 1;
      return { roots: [{ uri: ROOT_URI, name: 'interop' }] };
    });
  }
  client.setNotificationHandler(LoggingMessageNotificationSchema, (n) => {
    logs.push(String(n.params.data));
  });

  await client.connect(transport, reqOpts);
  const version = transport.protocolVersion;
  const sid = transport.sessionId;
  expect(sid, 'the server set no Mcp-Session-Id on the initialize response');

  await client.ping(reqOpts);
  const { tools } = await client.listTools(undefined, reqOpts);
  const names = tools.map((t) => t.name);
  expect(names.includes(opt.tool), `tools/list has no ${opt.tool} (got ${names.join(', ')})`);
  const result = await client.callTool({ name: opt.tool, arguments: JSON.parse(opt.args) }, undefined, reqOpts);
  expect(!result.isError, `${opt.tool} returned isError: ${textOf(result)}`);
  expect(textOf(result).includes(opt.expect), `${opt.tool} result ${JSON.stringify(textOf(result))} lacks ${JSON.stringify(opt.expect)}`);

  let extra = '';
  if (serverRequests) {
    // server-everything asks for roots ~350 ms after `initialized`.
    await waitFor(() => rootsAsked > 0, 10_000, 'the server\'s roots/list request');
    await waitFor(() => logs.some((m) => m.includes('Roots updated: 1 root')), 10_000, 'the "Roots updated" log notification');
    const roots = await client.callTool({ name: 'get-roots-list', arguments: {} }, undefined, reqOpts);
    expect(textOf(roots).includes(ROOT_URI), `get-roots-list does not name our root: ${textOf(roots)}`);
    const progress = [];
    await client.callTool(
      { name: 'trigger-long-running-operation', arguments: { duration: 0.6, steps: 3 } },
      undefined,
      { ...reqOpts, onprogress: (p) => progress.push(p.progress) },
    );
    expect(JSON.stringify(progress) === '[1,2,3]', `progress notifications: got ${JSON.stringify(progress)}, want [1,2,3]`);
    extra = ', roots/list + log + progress ok';
  }

  await transport.terminateSession();
  expect(transport.sessionId === undefined, 'terminateSession() left a session id (the DELETE was refused)');
  const after = await fetch(url, {
    method: 'POST',
    headers: {
      accept: 'application/json, text/event-stream',
      'content-type': 'application/json',
      'mcp-session-id': sid,
      'mcp-protocol-version': version ?? '2025-11-25',
    },
    body: JSON.stringify({ jsonrpc: '2.0', id: 99, method: 'ping' }),
  });
  await after.body?.cancel();
  const want = Number(opt['after-delete-status']);
  // A 200 here would mean the server ignored the DELETE (or answered it 405,
  // which the SDK tolerates but which leaves the session alive).
  expect(after.status === want, `request on the terminated session got ${after.status}, want ${want}`);
  await client.close();
  console.log(`ts_client: ok: StreamableHTTPClientTransport negotiated ${version}, terminateSession() then ${after.status}${extra}`);
}

const watchdog = setTimeout(() => {
  console.error('ts_client: FAIL: overall timeout (120 s)');
  process.exit(1);
}, 120_000);
watchdog.unref();

try {
  await main();
  process.exit(0);
} catch (e) {
  console.error(`ts_client: FAIL: ${e instanceof Mismatch ? e.message : e?.stack ?? e}`);
  process.exit(1);
}
