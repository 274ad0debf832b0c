/**
 * A seeded fuzz run against hostile input (issue 22), three parts, each case sent on its own
 * connection:
 *
 * - HTTP framing: mutated requests through a balancer to Node's own HTTP server (a strict parser)
 *   as the judge. The same bytes go straight to a second Node server, the reference. What the
 *   server behind the balancer read must agree with the reference, request for request: the
 *   same method, target and body (digest), Host as RFC 9112 3.2.2 says, never a request the
 *   reference did not read and never a parse error other than an unfinished message.
 * - PROXY headers: mutated v1 and v2 headers to a tcp listener with acceptProxyProtocol, in front
 *   of a server that gets a PROXY v1 line from the balancer. A header the reference reading
 *   (test/helpers/proxyReference.ts) refuses lets nothing through; an accepted one gives the
 *   server exactly the announced addresses and the client's bytes after the header.
 * - Admin API: hostile requests; every answer complete, a 2xx/3xx or a 4xx with a JSON error,
 *   never a 5xx, never a reset.
 *
 * The seed is fixed (FUZZ_SEED overrides it) and printed; FUZZ_SCALE multiplies the case counts;
 * FUZZ_ONLY=part:index (e.g. http:812) replays one case, FUZZ_ONLY=http:800-812 a few in a row
 * (a finding may depend on the pooled connection an earlier case left). Findings are listed with the replay
 * line and the case's bytes.
 */
import assert from 'node:assert/strict';
import { type AddressInfo, connect, createServer, type Server, type Socket } from 'node:net';
import { test } from 'node:test';
import { startAdmin } from '../../src/admin/index.js';
import { LOOPBACK } from '../admin/helpers.js';
import { startBackends, startBalancer } from '../helpers/balancer.js';
import { type JudgedRequest, startJudge } from '../helpers/httpJudge.js';
import { mutateBytes, mutateHttp, mutateProxy, Rng } from '../helpers/mutator.js';
import { ipGroups, referenceVerdict } from '../helpers/proxyReference.js';
import { ask } from '../helpers/rawHttp.js';

const SEED = Number(process.env.FUZZ_SEED ?? 20_220_022);
const SCALE = Number(process.env.FUZZ_SCALE ?? 1);
const ONLY = process.env.FUZZ_ONLY; // "part:index"
/** FUZZ_TRACE=1 prints every case as it is sent. */
const TRACE = process.env.FUZZ_TRACE === '1';
/** How many findings to print in full (FUZZ_SHOW). */
const SHOW = Number(process.env.FUZZ_SHOW ?? 20);
const COUNTS = {
  http: Math.round(3000 * SCALE),
  proxy: Math.round(2000 * SCALE),
  admin: Math.round(1000 * SCALE),
};

/** The indexes of a part to run: all, or those FUZZ_ONLY names ("http:812" or "http:800-812"). */
function indexes(part: keyof typeof COUNTS): number[] {
  if (ONLY !== undefined) {
    const [p, range] = ONLY.split(':');
    const [from, to] = range!.split('-').map(Number) as [number, number | undefined];
    return p === part ? Array.from({ length: (to ?? from) - from + 1 }, (_, k) => from + k) : [];
  }
  return Array.from({ length: COUNTS[part] }, (_, i) => i);
}

const replay = (part: string, i: number) => `FUZZ_SEED=${SEED} FUZZ_ONLY=${part}:${i}`;
const show = (b: Buffer | string) =>
  JSON.stringify(typeof b === 'string' ? b : b.toString('latin1')).slice(0, 600);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Reports the findings (the first SHOW in full) and fails when there are any. */
function conclude(
  t: { diagnostic(m: string): void },
  part: string,
  cases: number,
  ms: number,
  findings: string[],
) {
  t.diagnostic(`${part}: ${cases} cases, seed ${SEED}, ${ms} ms, ${findings.length} findings`);
  for (const f of findings.slice(0, SHOW)) t.diagnostic(f);
  assert.deepEqual(findings.slice(0, 3), [], `${findings.length} findings (seed ${SEED})`);
}

/**
 * Sends `bytes`, half-closes, and resolves once the peer has closed too (or after `ms`, with
 * `timedOut`). Whatever came back is returned.
 */
function sendAndClose(port: number, bytes: Buffer, ms = 3000): Promise<{ data: Buffer; timedOut: boolean }> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port, allowHalfOpen: true });
    const chunks: Buffer[] = [];
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      socket.destroy();
    }, ms);
    socket.on('data', (d: Buffer) => chunks.push(d));
    socket.on('end', () => socket.end());
    socket.on('error', () => {});
    socket.on('close', () => {
      clearTimeout(timer);
      resolve({ data: Buffer.concat(chunks), timedOut });
    });
    socket.end(bytes);
  });
}

// ---------------------------------------------------------------------------------------------
// HTTP framing

const HTTP_SEEDS = [
  'GET /a?x=1 HTTP/1.1\r\nHost: x\r\n\r\n',
  'POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nabcd',
  'POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n0\r\n\r\n',
  'POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n4;a=b;c="d"\r\nabcd\r\n1\r\ne\r\n0\r\nX-Sum: 5\r\n\r\n',
  'GET /1 HTTP/1.1\r\nHost: x\r\n\r\nPOST /2 HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nxyzGET /3 HTTP/1.1\r\nHost: x\r\n\r\n',
  'POST /4 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\nGET /5 HTTP/1.1\r\nHost: x\r\n\r\n',
  'GET http://example.test/abs HTTP/1.1\r\nHost: other.internal\r\n\r\n',
  'HEAD /h HTTP/1.1\r\nHost: x\r\n\r\n',
  'OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n',
  'GET /old HTTP/1.0\r\nConnection: keep-alive\r\n\r\n',
  'POST /old HTTP/1.0\r\nContent-Length: 2\r\n\r\nhi',
  'PUT /e HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n',
  'DELETE /d HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi',
];
const SENTINEL = 'GET /__end HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n';

/** A mutated request (or pipeline) for case `rng`. */
function httpCase(rng: Rng): Buffer {
  let text = rng.pick(HTTP_SEEDS);
  // Mostly one change: near misses of valid requests are where parsers disagree.
  const n = rng.chance(0.6) ? 1 : rng.chance(0.75) ? 2 : 3;
  for (let i = 0; i < n; i++) text = mutateHttp(rng, text);
  if (rng.chance(0.5)) text += SENTINEL;
  return Buffer.from(text, 'latin1');
}

/** The origin-form of a target as received (absolute-form reduced to path and query). */
function originForm(url: string): string {
  const m = /^[a-zA-Z][a-zA-Z0-9+.-]*:\/\/[^/?#]*(.*)$/.exec(url);
  if (m === null) return url;
  return m[1] === '' ? '/' : m[1]!.startsWith('/') ? m[1]! : `/${m[1]}`;
}

/** The Host a server must get for a request the reference read: the absolute-form authority. */
function expectedHost(r: JudgedRequest): string | undefined {
  const m = /^[a-zA-Z][a-zA-Z0-9+.-]*:\/\/(?:[^/?#@]*@)?([^/?#]*)/.exec(r.url);
  return m === null ? r.host : m[1];
}

/**
 * Errors of the reference where Fulcrum is knowingly more lenient and safe: llhttp refuses a
 * Transfer-Encoding value with a trailing HTAB (OWS, RFC 9110 5.6.3, which it trims when it is a
 * SP); Fulcrum accepts it and sends its own `transfer-encoding: chunked`, so the server behind
 * reads what Fulcrum read.
 */
const LENIENT = new Set(['HPE_INVALID_TRANSFER_ENCODING']);

/**
 * Parse errors of the server behind that are no disagreement on framing: the balancer stopped
 * forwarding inside a message, or forwarded a method llhttp does not know (RFC 9110 9.1 makes any
 * token a method; see the known differences in test/proxy/llhttpVectors.test.ts), which the
 * server refuses and closes on.
 */
const TOLERATED = new Set(['HPE_INVALID_EOF_STATE', 'ECONNRESET', 'HPE_INVALID_METHOD']);

test('fuzz: mutated HTTP requests, what a server behind the balancer reads vs Node reading them directly', {
  timeout: 120_000,
}, async (t) => {
  const judge = await startJudge();
  const reference = await startJudge();
  // Two listeners on the same judge: a new upstream connection per request, or pooled ones.
  const lb = await startBalancer(`
listeners:
  - { name: fresh, protocol: http, listen: "127.0.0.1:0", pool: fresh }
  - { name: pooled, protocol: http, listen: "127.0.0.1:0", pool: pooled }
pools:
  - name: fresh
    maxIdlePerServer: 0
    servers: [{ address: "127.0.0.1:${judge.port}", name: judge }]
  - name: pooled
    servers: [{ address: "127.0.0.1:${judge.port}", name: judge }]
`);
  const ports = [lb.runtime.address('fresh').port, lb.runtime.address('pooled').port];
  const findings: string[] = [];
  /** Host disagreements (issue 22, item 5), in a subtest of their own. */
  const hostFindings: string[] = [];
  let lenient = 0;
  const started = Date.now();
  /** Cases where the reference read a request, and where one reached the server behind. */
  const stats = {
    fresh: { cases: 0, referenceRead: 0, forwarded: 0 },
    pooled: { cases: 0, referenceRead: 0, forwarded: 0 },
  };
  try {
    const run = indexes('http');
    for (const i of run) {
      const rng = Rng.forCase(SEED, 'http', i);
      const bytes = httpCase(rng);
      const listener = i % 2 === 0 ? 'fresh' : 'pooled';
      stats[listener].cases++;
      if (TRACE) t.diagnostic(`http:${i} ${listener} ${show(bytes)}`);

      await sendAndClose(reference.port, bytes);
      await settle(reference);
      const ref = reference.take();

      if (ONLY !== undefined && i === run[0]) {
        // Replaying: an idle upstream connection first, as the run would have had.
        await sendAndClose(ports[i % 2]!, Buffer.from('GET /warm HTTP/1.1\r\nHost: x\r\n\r\n'));
        await settle(judge);
        judge.take();
      }
      const logFrom = lb.log.lines.length;
      const { timedOut } = await sendAndClose(ports[i % 2]!, bytes);
      await settle(judge);
      const got = judge.take();

      const problems: string[] = [];
      const hostProblems: string[] = [];
      if (timedOut) problems.push('the balancer did not close a half-closed connection within 3 s');
      const parseErrors = got.errors.filter((e) => !TOLERATED.has(e));
      if (parseErrors.length > 0)
        problems.push(`the server behind failed to parse: ${parseErrors.join(', ')}`);
      const refDone = ref.requests.filter((r) => r.complete);
      for (let k = 0; k < got.requests.length; k++) {
        const r = got.requests[k]!;
        const want = refDone[k] ?? ref.requests[k];
        const what = `request ${k + 1} (${r.method} ${r.url}, ${r.length} bytes${r.complete ? '' : ', unfinished'})`;
        if (want === undefined) {
          problems.push(`${what}: the reference read no such request`);
        } else if (r.method !== want.method || r.url !== originForm(want.url)) {
          problems.push(`${what}: the reference read ${want.method} ${want.url}`);
        } else if (r.complete && !want.complete && ref.errors.some((e) => LENIENT.has(e))) {
          // The reference gave up on this request where Fulcrum forwards its own framing field;
          // from here on only the server behind can judge (its parse errors are checked above).
          lenient++;
          break;
        } else if (r.complete && (!want.complete || r.digest !== want.digest)) {
          problems.push(
            `${what}: the reference read a body of ${want.length} bytes${want.complete ? '' : ', unfinished'}`,
          );
        } else {
          const host = expectedHost(want);
          if (host !== undefined && r.host?.toLowerCase() !== host.toLowerCase()) {
            hostProblems.push(`${what}: Host ${show(r.host ?? '(none)')}, expected ${show(host)}`);
          }
        }
      }
      const internal = lb.log.lines.slice(logFrom).filter((l) => /internal error/i.test(l));
      if (internal.length > 0) problems.push(`balancer: ${internal[0]!.trim()}`);
      const side = stats[listener];
      if (ref.requests.some((r) => r.complete)) side.referenceRead++;
      if (got.requests.some((r) => r.complete)) side.forwarded++;
      const tag = `[${replay('http', i)}] ${listener}:`;
      for (const p of problems) findings.push(`${tag} ${p}; bytes ${show(bytes)}`);
      for (const p of hostProblems) hostFindings.push(`${tag} ${p}; bytes ${show(bytes)}`);
    }
    t.diagnostic(
      `http: cases where the reference read a request / where one reached the server: ${JSON.stringify(stats)}; ` +
        `${lenient} where Fulcrum knowingly read more than the reference (LENIENT)`,
    );
    await t.test('Host: the absolute-form authority (RFC 9112 3.2.2)', (st) =>
      conclude(st, 'http Host', run.length, Date.now() - started, hostFindings),
    );
    conclude(t, 'http', run.length, Date.now() - started, findings);
  } finally {
    await lb.stop();
    await judge.close();
    await reference.close();
  }
});

/** Waits until the judge has no request in progress, then lets late events in. */
async function settle(judge: { quiet(): boolean }): Promise<void> {
  const until = Date.now() + 500;
  await sleep(1);
  while (!judge.quiet() && Date.now() < until) await sleep(1);
  await new Promise((r) => setImmediate(r));
}

// ---------------------------------------------------------------------------------------------
// PROXY headers

const FFFF = 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff';
const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');
const PROXY_SEEDS: Buffer[] = [
  Buffer.from('PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n'),
  Buffer.from('PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n'),
  Buffer.from('PROXY TCP6 2001:db8::1 ::1 1 65535\r\n'),
  Buffer.from(`PROXY TCP6 ${FFFF} ${FFFF} 65535 65535\r\n`),
  Buffer.from(`PROXY UNKNOWN ${FFFF} ${FFFF} 65535 65535\r\n`),
  Buffer.from('PROXY UNKNOWN\r\n'),
  hex('0d0a0d0a000d0a515549540a 21 11 000c ac130001 ac130003 a652 0050'),
  hex(
    '0d0a0d0a000d0a515549540a 21 21 0024 20010db8000000000000000000000001 00000000000000000000000000000001 04d2 01bb',
  ),
  hex('0d0a0d0a000d0a515549540a 20 00 0000'),
  hex('0d0a0d0a000d0a515549540a 21 00 0000'),
  hex('0d0a0d0a000d0a515549540a 21 11 0012 0a000001 0a000002 0001 0002 04 0003 616263'),
  hex('0d0a0d0a000d0a515549540a 21 12 000c 0a000001 0a000002 0035 0035'),
];

/** A server that records what each connection received, the whole of it once it closes. */
function startRecorder(): Promise<{ port: number; server: Server; done: Buffer[]; open: () => number }> {
  const done: Buffer[] = [];
  const sockets = new Set<Socket>();
  const server = createServer({ allowHalfOpen: true }, (socket) => {
    sockets.add(socket);
    const chunks: Buffer[] = [];
    socket.on('data', (d: Buffer) => chunks.push(d));
    socket.on('end', () => socket.end());
    socket.on('error', () => {});
    socket.on('close', () => {
      sockets.delete(socket);
      done.push(Buffer.concat(chunks));
    });
  });
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () =>
      resolve({ port: (server.address() as AddressInfo).port, server, done, open: () => sockets.size }),
    ),
  );
}

test('fuzz: mutated PROXY headers against a tcp listener with acceptProxyProtocol', {
  timeout: 120_000,
}, async (t) => {
  const rec = await startRecorder();
  const lb = await startBalancer(`
listeners:
  - { name: tcp, protocol: tcp, listen: "127.0.0.1:0", pool: p, acceptProxyProtocol: true, trustedProxies: [127.0.0.1] }
pools:
  - name: p
    sendProxyProtocol: v1
    servers: [{ address: "127.0.0.1:${rec.port}", name: rec }]
`);
  const findings: string[] = [];
  const started = Date.now();
  const verdicts = { accept: 0, refuse: 0 };
  try {
    const run = indexes('proxy');
    for (const i of run) {
      const rng = Rng.forCase(SEED, 'proxy', i);
      let header = rng.pick(PROXY_SEEDS);
      const n = 1 + rng.int(3);
      for (let k = 0; k < n; k++) header = mutateProxy(rng, header);
      const bytes = Buffer.concat([header, Buffer.from(rng.chance(0.8) ? `payload ${i}\n` : '')]);
      const verdict = referenceVerdict(bytes);
      verdicts[verdict.kind]++;

      rec.done.length = 0;
      const client = await new Promise<Socket>((resolve) => {
        const s = connect({ host: '127.0.0.1', port: lb.port, allowHalfOpen: true }, () => resolve(s));
      });
      const clientPort = client.localPort!;
      const closed = new Promise<boolean>((resolve) => {
        const timer = setTimeout(() => {
          client.destroy();
          resolve(false);
        }, 3000);
        client.on('data', () => {});
        client.on('end', () => client.end());
        client.on('error', () => {});
        client.on('close', () => {
          clearTimeout(timer);
          resolve(true);
        });
      });
      client.end(bytes);
      const problems: string[] = [];
      if (!(await closed)) problems.push('the balancer did not close within 3 s');
      const until = Date.now() + 500;
      while (rec.open() > 0 && Date.now() < until) await sleep(1);
      const got = rec.done.splice(0);

      if (verdict.kind === 'refuse') {
        if (got.length > 0) problems.push(`refused by the reference, yet the server got ${show(got[0]!)}`);
      } else if (got.length !== 1) {
        problems.push(
          `accepted by the reference (${verdict.length} bytes), the server got ${got.length} connections`,
        );
      } else {
        const data = got[0]!.toString('latin1');
        const eol = data.indexOf('\r\n');
        const line = data.slice(0, eol).split(' ');
        const rest = data.slice(eol + 2);
        const [src, sport] = verdict.source ?? ['127.0.0.1', clientPort];
        const [dst, dport] = verdict.dest ?? ['127.0.0.1', lb.port];
        const same = (a: string | undefined, b: string) =>
          a !== undefined && ipGroups(a).join() === ipGroups(b).join();
        if (
          !same(line[2], src) ||
          !same(line[3], dst) ||
          Number(line[4]) !== sport ||
          Number(line[5]) !== dport
        ) {
          problems.push(
            `the server was told ${show(data.slice(0, eol))}, expected ${src} ${dst} ${sport} ${dport}`,
          );
        }
        if (rest !== bytes.subarray(verdict.length).toString('latin1')) {
          problems.push(
            `the server got ${show(rest)} after the header, expected ${show(bytes.subarray(verdict.length))}`,
          );
        }
      }
      for (const p of problems) findings.push(`[${replay('proxy', i)}] ${p}; bytes ${show(bytes)}`);
    }
    t.diagnostic(`proxy: reference verdicts ${JSON.stringify(verdicts)}`);
    conclude(t, 'proxy', run.length, Date.now() - started, findings);
  } finally {
    await lb.stop();
    await new Promise((r) => rec.server.close(r));
  }
});

// ---------------------------------------------------------------------------------------------
// Admin API

const ADMIN_METHODS = [
  'GET',
  'GET',
  'POST',
  'POST',
  'PATCH',
  'DELETE',
  'PUT',
  'HEAD',
  'OPTIONS',
  'G@T',
  'get',
];
const ADMIN_PATHS = [
  '/',
  '//',
  '///',
  '/api',
  '/api/',
  '/api//status',
  '/api/status',
  '/api/listeners',
  '/api/pools',
  '/api/pools/web',
  '/api/pools/web/',
  '/api/pools/nope',
  '/api/pools/web/servers',
  '/api/pools/web/servers/a',
  '/api/pools/web/servers/b?timeout=1ms',
  '/api/pools/web/servers/zz',
  '/api/pools/web/servers/a?timeout=zz',
  '/api/pools/%zz',
  '/api/pools/%00/servers',
  '/api/pools/web%2fservers',
  '/api/reload',
  '/metrics',
  '/dashboard/app.js',
  '/dashboard/..%2f..%2fpackage.json',
  '/login',
  '*',
  'http://admin/api/status',
  'http://[::1/',
  '/%E2%82%AC',
  `/${'a'.repeat(3000)}`,
  '/api/status?x=%',
];
const BODY_ROUTES: Array<[string, string]> = [
  ['POST', '/api/pools/web/servers'],
  ['PATCH', '/api/pools/web/servers/a'],
  ['POST', '/api/reload'],
  ['POST', '/login'],
];
const ADMIN_HOSTS = ['127.0.0.1', '127.0.0.1', '127.0.0.1', 'localhost:9000', 'evil.example', '', '[::1]'];

/** A hostile admin request: [bytes, method]. */
function adminCase(rng: Rng): [Buffer, string] {
  let method = rng.pick(ADMIN_METHODS);
  let path = rng.pick(ADMIN_PATHS);
  let host = rng.pick(ADMIN_HOSTS);
  let body: Buffer | undefined;
  const kind = rng.int(8);
  if (kind <= 3 && rng.chance(0.6)) {
    // Most odd bodies go where a body is read, so that its size and shape are what is tested.
    [method, path] = rng.pick(BODY_ROUTES);
    host = '127.0.0.1';
  }
  switch (kind) {
    case 0:
      body = undefined;
      break;
    case 1:
      body = Buffer.from(
        rng.pick([
          '{}',
          '[]',
          'null',
          '"x"',
          '1e309',
          '{"address":"127.0.0.1:1"}',
          '{"weight":-1}',
          '{"state":"drain"}',
          '{"weight":1e309}',
          '{"address":"127.0.0.1:99999"}',
        ]),
      );
      break;
    case 2: {
      const depth = rng.pick([2, 31, 32, 33, 100, 5000, 12_000]);
      const open = rng.chance(0.5) ? '{"a":' : '[';
      body = Buffer.from(`${open.repeat(depth)}1${(open === '[' ? ']' : '}').repeat(depth)}`);
      break;
    }
    case 3:
      body = Buffer.alloc(rng.pick([65_536, 65_537, 70_000, 200_000]), 0x61);
      break;
    default: {
      let b: Buffer = Buffer.from(
        JSON.stringify({ address: '127.0.0.1:1', name: 'n', weight: 2, backup: false }),
      );
      for (let k = 1 + rng.int(4); k > 0; k--) b = mutateBytes(rng, b);
      body = b;
    }
  }
  let head = `${method} ${path} HTTP/1.1\r\n`;
  if (host !== '' || rng.chance(0.5)) head += `Host: ${host}\r\n`;
  if (rng.chance(0.2)) head += 'Origin: http://evil.example\r\n';
  if (rng.chance(0.2)) head += `Authorization: Bearer ${rng.pick(['', 'x', 'a'.repeat(500)])}\r\n`;
  if (rng.chance(0.3))
    head += `Content-Type: ${rng.pick(['application/json', 'text/plain', 'application/x-www-form-urlencoded', '\xff'])}\r\n`;
  let bytes: Buffer;
  if (body === undefined) bytes = Buffer.from(`${head}\r\n`, 'latin1');
  else if (rng.chance(0.25)) {
    bytes = Buffer.concat([
      Buffer.from(`${head}Transfer-Encoding: chunked\r\n\r\n${body.length.toString(16)}\r\n`, 'latin1'),
      body,
      Buffer.from(rng.chance(0.8) ? '\r\n0\r\n\r\n' : '\r\nzz\r\n', 'latin1'),
    ]);
  } else {
    const declared = rng.chance(0.85) ? body.length : rng.pick([0, body.length - 1, body.length + 5]);
    bytes = Buffer.concat([Buffer.from(`${head}Content-Length: ${declared}\r\n\r\n`, 'latin1'), body]);
  }
  if (rng.chance(0.1)) bytes = mutateBytes(rng, bytes);
  return [bytes, method];
}

test('fuzz: hostile admin requests get a 2xx/3xx or a JSON 4xx, never a 5xx or a reset', {
  timeout: 120_000,
}, async (t) => {
  const backends = await startBackends(2);
  const lb = await startBalancer(`
listeners: [{ name: web, protocol: http, listen: "127.0.0.1:0", pool: web }]
pools:
  - name: web
    servers:
      - { address: "127.0.0.1:${backends[0]!.port}", name: a }
      - { address: "127.0.0.1:${backends[1]!.port}", name: b }
`);
  const admin = await startAdmin(lb.runtime, LOOPBACK, lb.log, { intervalMs: 1000 });
  const findings: string[] = [];
  const statuses = new Map<number, number>();
  const started = Date.now();
  try {
    const run = indexes('admin');
    for (const i of run) {
      const rng = Rng.forCase(SEED, 'admin', i);
      const [bytes, method] = adminCase(rng);
      // Half-closed after the bytes: a request cut short is then an error, not a wait.
      const a = await ask(admin.address.port, bytes, {
        head: method === 'HEAD',
        waitMs: 8000,
        halfClose: true,
      });
      statuses.set(a.status, (statuses.get(a.status) ?? 0) + 1);
      const problems: string[] = [];
      if (a.error !== undefined) problems.push(`socket error ${a.error} (status ${a.status})`);
      if (a.status === 0) problems.push('no complete answer');
      else if (a.status >= 500) problems.push(`${a.status} ${a.body.slice(0, 200)}`);
      else if (a.status >= 400 && method !== 'HEAD') {
        let ok = /^application\/json/.test(a.headers['content-type'] ?? '');
        try {
          ok &&= typeof (JSON.parse(a.body) as { error?: unknown }).error === 'string';
        } catch {
          ok = false;
        }
        if (!ok) problems.push(`${a.status} without a JSON error: ${show(a.body.slice(0, 200))}`);
      }
      for (const p of problems)
        findings.push(`[${replay('admin', i)}] ${p}; bytes ${show(bytes.subarray(0, 300))}`);
    }
    t.diagnostic(`admin: statuses ${JSON.stringify(Object.fromEntries([...statuses].sort()))}`);
    conclude(t, 'admin', run.length, Date.now() - started, findings);
  } finally {
    await admin.close();
    await lb.stop();
    await Promise.all(backends.map((b) => b.close().catch(() => {})));
  }
});
