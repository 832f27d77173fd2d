#!/usr/bin/env node
// Drives an MCP Streamable HTTP endpoint with the official TypeScript SDK 2.x
// client (@modelcontextprotocol/client) in automatic version negotiation
// (`versionNegotiation: {mode: 'auto'}`): it probes `server/discover` and
// speaks 2026-07-28 when the server answers, else falls back to `initialize`.
//
//   ts2_client.mjs URL --tool NAME [--args JSON] --expect TEXT --era modern|legacy
//                      [--elicit-message TEXT --elicit-answer JSON]
//
// Connects, lists tools (NAME must be listed), calls NAME(JSON) (not an error,
// text contains TEXT), closes. --era says which era the server must have been
// spoken to in: the negotiated version is checked, and every POST is recorded
// (a fetch wrapper) to check on the wire that a modern conversation sent no
// `initialize` and no `Mcp-Session-Id`. Exit 0 when every check holds.
//
// With --elicit-message, the client declares the elicitation capability and
// registers an `elicitation/create` handler answering `accept` with the
// --elicit-answer content; NAME is a tool whose server asks for elicitation
// while it runs. The SDK's own multi-round-trip driver must carry it (the
// handler is asked with TEXT; a later tools/call POST carries `inputResponses`
// and the `requestState` the proxy gave in its `input_required` result), and
// the tool's result must contain every --elicit-answer value. The proxy's
// /metrics (same origin) are read before and after: in the modern era no
// `initialize` and no legacy-era request may have reached it meanwhile.
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
    'elicit-message': { type: 'string' },
    'elicit-answer': { type: 'string', default: '{}' },
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

// The proxy's counters (docs/PROXY.md, "Metrics"): initialize requests, and requests by era.
async function counters() {
  const text = await (await fetch(new URL('/metrics', url))).text();
  const sum = (re) =>
    text
      .split('\n')
      .filter((l) => re.test(l))
      .reduce((n, l) => n + Number(l.trim().split(/\s+/).pop()), 0);
  return {
    initialize: sum(/^stdiopool_requests_total\{[^}]*method="initialize"/),
    modern: sum(/^stdiopool_requests_by_era_total\{[^}]*era="modern"/),
    legacy: sum(/^stdiopool_requests_by_era_total\{[^}]*era="legacy"/),
  };
}

const eliciting = values['elicit-message'] !== undefined;
const answer = JSON.parse(values['elicit-answer']);
const asked = [];

try {
  const before = eliciting ? await counters() : null;
  const options = { versionNegotiation: { mode: 'auto' } };
  if (eliciting) options.capabilities = { elicitation: { form: {} } };
  const client = new Client({ name: 'stdiopool-interop-ts2', version: '0' }, options);
  if (eliciting) {
    client.setRequestHandler('elicitation/create', async (request) => {
      asked.push(request.params?.message);
      return { action: 'accept', content: answer };
    });
  }
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
  let elicited = '';
  if (eliciting) {
    if (asked.length !== 1 || asked[0] !== values['elicit-message'])
      fail(`the elicitation handler was asked ${JSON.stringify(asked)}, want [${JSON.stringify(values['elicit-message'])}]`);
    for (const v of Object.values(answer))
      if (!text.includes(String(v))) fail(`${values.tool} result ${JSON.stringify(text)} lacks the elicited ${JSON.stringify(v)}`);
    const after = await counters();
    const delta = (k) => after[k] - before[k];
    const metrics = `proxy metrics: +${delta('modern')} modern, +${delta('legacy')} legacy, +${delta('initialize')} initialize`;
    if (modern) {
      const calls = posts.filter((p) => /"method"\s*:\s*"tools\/call"/.test(p.body)).map((p) => JSON.parse(p.body));
      const retry = calls.find((b) => b.params?.inputResponses && typeof b.params?.requestState === 'string');
      if (!retry) fail(`no tools/call retry with inputResponses and requestState went out (${calls.length} tools/call POSTs)`);
      if (retry.id === calls[0].id) fail(`the retry reused the first call's id ${retry.id}`);
      if (delta('initialize') !== 0 || delta('legacy') !== 0) fail(`during a modern conversation: ${metrics}`);
      if (delta('modern') < posts.length) fail(`${posts.length} POSTs, but ${metrics}`);
      elicited =
        `; elicitation answered through input_required (retry id ${retry.id} with inputResponses ${Object.keys(retry.params.inputResponses)}),` +
        ` the tool saw it; ${metrics}`;
    } else {
      elicited = `; elicitation answered as a server request; ${metrics}`;
    }
  }
  if (!posts.length || !posts[0].body.includes('"server/discover"')) fail(`the first POST was not server/discover: ${JSON.stringify(posts[0])}`);
  if (modern) {
    if (posts[0].status !== 200) fail(`server/discover answered ${posts[0].status}`);
    const inits = posts.filter((p) => /"method"\s*:\s*"initialize"/.test(p.body));
    if (inits.length) fail(`an initialize reached the server in the modern era`);
    if (posts.some((p) => p.session)) fail(`a session id was sent in the modern era`);
    console.log(`ts2_client: ok: versionNegotiation auto: server/discover -> 200, spoke ${version} with no initialize and no session${elicited}`);
  } else {
    console.log(`ts2_client: ok: versionNegotiation auto: server/discover -> ${posts[0].status}, fell back to initialize, negotiated ${version}${elicited}`);
  }
} catch (e) {
  fail(`${e?.name ?? 'Error'}: ${e?.message ?? e}`);
}
