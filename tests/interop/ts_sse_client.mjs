#!/usr/bin/env node
// Drives stdiopool's legacy HTTP+SSE transport (MCP 2024-11-05) with the
// official TypeScript SDK's SSEClientTransport (1.x).
//
//   ts_sse_client.mjs SSE_URL --tool NAME [--args JSON] --expect TEXT [--server-requests]
//
// Connects to SSE_URL (`.../sse`): the transport waits for the `endpoint`
// event and POSTs every message there. Then initialize, ping, list tools
// (NAME must be listed), call NAME(JSON) (not an error, text contains TEXT).
// close() closes the stream, which must end the session: a POST to the
// endpoint the transport used must then get 404 (within 10 s).
//
// --server-requests (session mode, server-everything only): declare `roots`;
// the server's own roots/list request must reach us on the stream, our answer
// (a POST) must reach the server (its notifications/message reports the
// count, get-roots-list names our root), and progress notifications must arrive.
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
const { SSEClientTransport } = await sdk('client/sse.js');
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
  },
});
if (positionals.length !== 1 || !opt.tool || opt.expect === undefined) {
  console.error('usage: ts_sse_client.mjs SSE_URL --tool NAME [--args JSON] --expect TEXT [--server-requests]');
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
  // The transport's fetch, recording where its POSTs go (the endpoint it was given).
  const posted = new Set();
  const recordingFetch = (input, init) => {
    if ((init?.method ?? 'GET') === 'POST') posted.add(String(input));
    return fetch(input, init);
  };
  const transport = new SSEClientTransport(url, { fetch: recordingFetch });
  const client = new Client(
    { name: 'stdiopool-interop-ts-sse', version: '1.0.0' },
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
  const lateProgress = [];
  client.onerror = (e) => {
    const hit = String(e?.message ?? e).match(/progress notification for an unknown token: (.*)$/s);
    if (!hit) return;
    try {
      lateProgress.push(JSON.parse(hit[1]).params.progress);
    } catch {
      // not ours
    }
  };

  await client.connect(transport, reqOpts);
  expect(client.getServerVersion()?.name, 'initialize: no serverInfo.name');

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
    // The SDK handles a notification a microtask late and a response at once, and the
    // `eventsource` package dispatches every event of one network chunk in one go: the last
    // progress notification, sent right before the response, can then reach the SDK after it
    // (on the wire it is before it), which reports it through onerror as "unknown token". It
    // was delivered: count it, and say so.
    await waitFor(() => progress.length + lateProgress.length >= 3, 2_000, 'three progress notifications');
    const all = [...progress, ...lateProgress];
    expect(JSON.stringify(all) === '[1,2,3]', `progress notifications: got ${JSON.stringify(progress)} (+ after the response: ${JSON.stringify(lateProgress)}), want [1,2,3]`);
    const late = lateProgress.length ? ` (${lateProgress.join(', ')} handled after the response: the SDK's race)` : '';
    extra = `, roots/list + log + progress ok${late}`;
  }

  expect(posted.size === 1, `the transport POSTed to ${posted.size} URLs, want one endpoint: ${[...posted].join(', ')}`);
  const [endpoint] = posted;
  expect(new URL(endpoint).searchParams.get('session_id'), `the endpoint names no session: ${endpoint}`);
  await client.close();
  // The stream is closed: the session must be gone.
  let status = 0;
  const deadline = Date.now() + 10_000;
  for (;;) {
    const after = await fetch(endpoint, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 99, method: 'ping' }),
    });
    await after.body?.cancel();
    status = after.status;
    if (status === 404 || Date.now() > deadline) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  expect(status === 404, `a POST after close() got ${status}, want 404`);
  console.log(`ts_sse_client: ok: SSEClientTransport to ${new URL(endpoint).pathname}, close() then 404${extra}`);
}

const watchdog = setTimeout(() => {
  console.error('ts_sse_client: FAIL: overall timeout (120 s)');
  process.exit(1);
}, 120_000);
watchdog.unref();

try {
  await main();
  process.exit(0);
} catch (e) {
  console.error(`ts_sse_client: FAIL: ${e instanceof Mismatch ? e.message : e?.stack ?? e}`);
  process.exit(1);
}
