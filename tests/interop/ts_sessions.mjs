#!/usr/bin/env node
// Sessions that never end, with the official TypeScript SDK (1.x), as most clients do.
//
//   ts_sessions.mjs URL --tool NAME [--args JSON] --expect TEXT [--count 100]
//
// COUNT times, one after the other: a new Client over StreamableHTTPClientTransport
// initializes, calls NAME(JSON) (not an error, text contains TEXT) and closes WITHOUT
// terminateSession(), so the proxy never sees a DELETE. On a session-mode proxy with a pool
// smaller than COUNT every session must still succeed: the proxy ends idle sessions to make
// room (docs/PROXY.md, "Sessions under pressure") instead of answering 503.
//
// The SDK is loaded as in ts_client.mjs. Exit 0 when every session succeeded.

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

const STEP_TIMEOUT_MS = 30_000;

const { values: opt, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    tool: { type: 'string' },
    args: { type: 'string', default: '{}' },
    expect: { type: 'string' },
    count: { type: 'string', default: '100' },
  },
});
const url = positionals[0];
if (!url || !opt.tool || opt.expect === undefined) {
  console.error('usage: ts_sessions.mjs URL --tool NAME [--args JSON] --expect TEXT [--count N]');
  process.exit(2);
}
const count = Number(opt.count);
const args = JSON.parse(opt.args);

const bounded = (what, promise) =>
  Promise.race([
    promise,
    new Promise((_, reject) =>
      setTimeout(() => reject(new Error(`${what}: no answer within ${STEP_TIMEOUT_MS} ms`)), STEP_TIMEOUT_MS).unref(),
    ),
  ]);

const started = Date.now();
const ids = new Set();
for (let n = 0; n < count; n++) {
  const client = new Client({ name: 'stdiopool-interop-sessions', version: '0' });
  const transport = new StreamableHTTPClientTransport(new URL(url));
  try {
    await bounded(`session ${n}: initialize`, client.connect(transport));
    ids.add(transport.sessionId);
    const r = await bounded(`session ${n}: tools/call`, client.callTool({ name: opt.tool, arguments: args }));
    const text = (r.content ?? []).map((c) => c.text ?? '').join('\n');
    if (r.isError || !text.includes(opt.expect)) {
      throw new Error(`session ${n}: ${opt.tool} answered ${JSON.stringify(r)}`);
    }
  } catch (e) {
    console.error(`ts_sessions: FAIL after ${n} sessions: ${e?.message ?? e}`);
    process.exit(1);
  }
  // close() without terminateSession(): no DELETE, as the SDK's own close() does.
  await client.close();
}
if (ids.size !== count) {
  console.error(`ts_sessions: FAIL: ${ids.size} distinct session ids for ${count} sessions`);
  process.exit(1);
}
console.log(`ts_sessions: ok: ${count} sessions, none deleted, all served (${Date.now() - started} ms)`);
