import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import {
  encodeProxyHeader,
  encodeProxyV1,
  encodeProxyV2,
  encodeProxyV2Local,
  formatIPv6,
  ipBytes,
  type ProxyParse,
  parseProxyHeader,
  V1_MAX_LENGTH,
  V2_SIGNATURE,
} from '../../src/proxy/proxyProtocol.js';
import { startBalancer } from '../helpers/balancer.js';

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');
const ok = (r: ProxyParse) => {
  assert.equal(r.kind, 'ok', JSON.stringify(r));
  return r as Extract<ProxyParse, { kind: 'ok' }>;
};
const reason = (r: ProxyParse) => {
  assert.equal(r.kind, 'invalid', JSON.stringify(r));
  return (r as Extract<ProxyParse, { kind: 'invalid' }>).reason;
};

// ---------------------------------------------------------------------------------------------
// Version 1, against the examples of proxy-protocol.txt section 2.1

test('v1: the specification example line, byte for byte', () => {
  const line = encodeProxyV1({
    sourceAddress: '192.168.0.1',
    sourcePort: 56324,
    destAddress: '192.168.0.11',
    destPort: 443,
  });
  assert.equal(line.toString('latin1'), 'PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n');
});

test('v1: the longest TCP4 and TCP6 lines are 56 and 104 bytes; UNKNOWN is 15', () => {
  const v4 = encodeProxyV1({
    sourceAddress: '255.255.255.255',
    sourcePort: 65535,
    destAddress: '255.255.255.255',
    destPort: 65535,
  });
  assert.equal(v4.toString('latin1'), 'PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n');
  assert.equal(v4.length, 56);
  const ffff = 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff';
  const v6 = encodeProxyV1({ sourceAddress: ffff, sourcePort: 65535, destAddress: ffff, destPort: 65535 });
  assert.equal(v6.toString('latin1'), `PROXY TCP6 ${ffff} ${ffff} 65535 65535\r\n`);
  assert.equal(v6.length, 104);
  const unknown = encodeProxyV1({
    sourceAddress: 'not-an-ip',
    sourcePort: 1,
    destAddress: '10.0.0.1',
    destPort: 2,
  });
  assert.equal(unknown.toString('latin1'), 'PROXY UNKNOWN\r\n');
  assert.equal(unknown.length, 15);
});

test('v1: IPv4-mapped addresses are sent as IPv4; mixed families as TCP6', () => {
  const mapped = encodeProxyV1({
    sourceAddress: '::ffff:10.1.2.3',
    sourcePort: 1000,
    destAddress: '10.0.0.1',
    destPort: 80,
  });
  assert.equal(mapped.toString('latin1'), 'PROXY TCP4 10.1.2.3 10.0.0.1 1000 80\r\n');
  const mixed = encodeProxyV1({
    sourceAddress: '10.1.2.3',
    sourcePort: 1000,
    destAddress: '2001:db8::1',
    destPort: 80,
  });
  assert.equal(mixed.toString('latin1'), 'PROXY TCP6 ::ffff:a01:203 2001:db8::1 1000 80\r\n');
});

test('v1: parses the specification lines, including the 107-byte worst case', () => {
  const data = Buffer.from('PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\nGET / HTTP/1.1\r\n', 'latin1');
  const r = ok(parseProxyHeader(data));
  assert.equal(r.version, 1);
  assert.equal(r.length, 47);
  assert.deepEqual(r.endpoints, {
    sourceAddress: '192.168.0.1',
    sourcePort: 56324,
    destAddress: '192.168.0.11',
    destPort: 443,
  });
  assert.equal(data.subarray(r.length).toString(), 'GET / HTTP/1.1\r\n');

  const ffff = 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff';
  const worst = Buffer.from(`PROXY UNKNOWN ${ffff} ${ffff} 65535 65535\r\n`, 'latin1');
  assert.equal(worst.length, V1_MAX_LENGTH);
  const w = ok(parseProxyHeader(worst));
  assert.equal(w.length, 107);
  assert.equal(w.endpoints, undefined, 'UNKNOWN: use the real connection');
  assert.equal(ok(parseProxyHeader(Buffer.from('PROXY UNKNOWN\r\n'))).length, 15);

  const v6 = ok(parseProxyHeader(Buffer.from('PROXY TCP6 2001:DB8:0:0:0:0:0:1 ::1 1 65535\r\n')));
  assert.deepEqual(v6.endpoints, {
    sourceAddress: '2001:db8::1',
    sourcePort: 1,
    destAddress: '::1',
    destPort: 65535,
  });
});

test('v1: incomplete until the CRLF, whatever the fragmentation', () => {
  const line = Buffer.from('PROXY TCP4 10.0.0.1 10.0.0.2 1 2\r\n');
  for (let i = 1; i < line.length; i++)
    assert.equal(parseProxyHeader(line.subarray(0, i)).kind, 'incomplete', `${i} bytes`);
  assert.equal(ok(parseProxyHeader(line)).length, line.length);
});

test('v1: strict — anything that does not exactly match is invalid', () => {
  const bad = [
    'PROXY TCP4 10.0.0.01 10.0.0.2 1 2\r\n', // leading zero in an address
    'PROXY TCP4 10.0.0.1 10.0.0.2 01 2\r\n', // leading zero in a port
    'PROXY TCP4 10.0.0.1 10.0.0.2 1 65536\r\n',
    'PROXY TCP4 10.0.0.1  10.0.0.2 1 2\r\n', // two spaces
    'PROXY TCP4 10.0.0.1 10.0.0.2 1 2 \r\n',
    'PROXY TCP4 ::1 ::1 1 2\r\n', // family mismatch
    'PROXY TCP6 10.0.0.1 10.0.0.2 1 2\r\n',
    'PROXY TCP6 ::ffff:10.0.0.1 ::1 1 2\r\n', // dotted tail: not in the v1 grammar
    'PROXY TCP6 1::2::3 ::1 1 2\r\n',
    'PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n',
    'PROXY UDP4 10.0.0.1 10.0.0.2 1 2\r\n',
    'PROXY TCP4 10.0.0.1 10.0.0.2 1 2\n', // a lone LF never ends the line
    'PROXY TCP4 10.0.0.1 10.0.0.2 1 2\rX',
    'proxy TCP4 10.0.0.1 10.0.0.2 1 2\r\n',
    'PROXY\tTCP4 10.0.0.1 10.0.0.2 1 2\r\n',
    'GET / HTTP/1.1\r\n',
  ];
  for (const text of bad)
    assert.equal(parseProxyHeader(Buffer.from(text, 'latin1')).kind, 'invalid', JSON.stringify(text));
  // The first wrong byte is enough: no waiting for a line that can never be valid.
  assert.equal(parseProxyHeader(Buffer.from('G')).kind, 'invalid');
  assert.equal(parseProxyHeader(Buffer.from('PROXx')).kind, 'invalid');
  // No CRLF within 107 bytes.
  assert.match(reason(parseProxyHeader(Buffer.from(`PROXY UNKNOWN ${'x'.repeat(100)}`))), /longer than 107/);
});

test('v1: 107 bytes is the limit, CRLF included; a 108-byte line is refused (issue 22, item 8)', () => {
  const ffff = 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff';
  const cases: { line: string; length: number; verdict: 'ok' | 'invalid' }[] = [
    // The specification's worst case, exactly 107 bytes.
    { line: `PROXY UNKNOWN ${ffff} ${ffff} 65535 65535\r\n`, length: 107, verdict: 'ok' },
    // The fuzzer's case: the same with a trailing space, 108 bytes.
    { line: `PROXY UNKNOWN ${ffff} ${ffff} 65535 65535 \r\n`, length: 108, verdict: 'invalid' },
    { line: `PROXY UNKNOWN ${'x'.repeat(91)}\r\n`, length: 107, verdict: 'ok' },
    { line: `PROXY UNKNOWN ${'x'.repeat(92)}\r\n`, length: 108, verdict: 'invalid' },
  ];
  for (const { line, length, verdict } of cases) {
    const bytes = Buffer.from(line, 'latin1');
    assert.equal(bytes.length, length);
    const whole = parseProxyHeader(bytes);
    assert.equal(whole.kind, verdict, `${length} bytes: ${JSON.stringify(whole)}`);
    if (verdict === 'ok') assert.equal(ok(whole).length, length);
    else assert.match(reason(whole), /longer than 107/);
    // Cut anywhere: never "ok" early, and a line that cannot fit is refused as soon as 106 bytes
    // without a CR are in (the CR of a 107-byte line is its 106th byte).
    for (let i = 1; i < length; i++) {
      const part = parseProxyHeader(bytes.subarray(0, i));
      const expected = verdict === 'invalid' && i >= V1_MAX_LENGTH - 1 ? 'invalid' : 'incomplete';
      assert.equal(part.kind, expected, `${length}-byte line cut at ${i}`);
    }
  }
});

// ---------------------------------------------------------------------------------------------
// Version 2, against the layout of proxy-protocol.txt section 2.2

test('v2: TCP over IPv4, byte for byte (signature, 0x21, 0x11, length 12, addresses, ports)', () => {
  const header = encodeProxyV2({
    sourceAddress: '172.19.0.1',
    sourcePort: 42578,
    destAddress: '172.19.0.3',
    destPort: 80,
  });
  assert.deepEqual(
    header,
    hex(`
      0d 0a 0d 0a 00 0d 0a 51 55 49 54 0a
      21 11 00 0c
      ac 13 00 01  ac 13 00 03
      a6 52  00 50`),
  );
  assert.deepEqual(header.subarray(0, 12), V2_SIGNATURE);
  assert.deepEqual(V2_SIGNATURE, Buffer.from('\r\n\r\n\0\r\nQUIT\n', 'latin1'));
});

test('v2: TCP over IPv6 (family 0x21, length 36), UDP (0x12 / 0x22), LOCAL and UNSPEC', () => {
  const header = encodeProxyV2({
    sourceAddress: '2001:db8::1',
    sourcePort: 1234,
    destAddress: '::1',
    destPort: 443,
  });
  assert.deepEqual(
    header,
    hex(`
      0d0a0d0a000d0a515549540a 21 21 0024
      20010db8000000000000000000000001
      00000000000000000000000000000001
      04d2 01bb`),
  );
  const udp4 = encodeProxyV2(
    { sourceAddress: '10.0.0.1', sourcePort: 53, destAddress: '10.0.0.2', destPort: 53 },
    'udp',
  );
  assert.equal(udp4[13], 0x12);
  const udp6 = encodeProxyHeader(
    'v2',
    { sourceAddress: '::2', sourcePort: 53, destAddress: '::3', destPort: 53 },
    'udp',
  );
  assert.equal(udp6[13], 0x22);
  assert.deepEqual(encodeProxyV2Local(), hex('0d0a0d0a000d0a515549540a 20 00 0000'));
  const unspec = encodeProxyV2({ sourceAddress: '', sourcePort: 0, destAddress: '10.0.0.1', destPort: 1 });
  assert.deepEqual(unspec, hex('0d0a0d0a000d0a515549540a 21 00 0000'));
  // Mixed families: both as IPv6, the IPv4 one mapped.
  const mixed = encodeProxyV2({ sourceAddress: '10.0.0.1', sourcePort: 1, destAddress: '::1', destPort: 2 });
  assert.equal(mixed[13], 0x21);
  assert.deepEqual(mixed.subarray(16, 32), hex('00000000000000000000ffff0a000001'));
});

test('v2: parses addresses, skips TLVs, LOCAL means the real connection', () => {
  const base = encodeProxyV2({
    sourceAddress: '203.0.113.7',
    sourcePort: 40000,
    destAddress: '198.51.100.2',
    destPort: 5432,
  });
  const r = ok(parseProxyHeader(Buffer.concat([base, Buffer.from('payload')])));
  assert.equal(r.version, 2);
  assert.equal(r.length, 28);
  assert.equal(r.transport, 'tcp');
  assert.deepEqual(r.endpoints, {
    sourceAddress: '203.0.113.7',
    sourcePort: 40000,
    destAddress: '198.51.100.2',
    destPort: 5432,
  });

  // With TLVs: ALPN "h2" and a NOOP of 3 bytes; the length covers them.
  const tlvs = hex('01 0002 6832  04 0003 000000');
  const withTlv = Buffer.concat([base, tlvs]);
  withTlv.writeUInt16BE(12 + tlvs.length, 14);
  const t = ok(parseProxyHeader(withTlv));
  assert.equal(t.length, 28 + tlvs.length);
  assert.equal(t.endpoints?.sourceAddress, '203.0.113.7');

  const local = Buffer.concat([hex('0d0a0d0a000d0a515549540a 20 11 000c'), Buffer.alloc(12)]);
  const l = ok(parseProxyHeader(local));
  assert.equal(l.endpoints, undefined);
  assert.equal(l.length, 28);

  const v6 = encodeProxyV2({
    sourceAddress: '::ffff:192.0.2.1',
    sourcePort: 1,
    destAddress: '2001:db8::2',
    destPort: 2,
  });
  assert.equal(v6[13], 0x21);
  assert.deepEqual(ok(parseProxyHeader(v6)).endpoints, {
    sourceAddress: '192.0.2.1', // mapped IPv4 comes out as IPv4, as everywhere in Fulcrum
    sourcePort: 1,
    destAddress: '2001:db8::2',
    destPort: 2,
  });
});

test('v2: incomplete until the announced length; strict about version, command, family, TLVs', () => {
  const header = encodeProxyV2({
    sourceAddress: '10.0.0.1',
    sourcePort: 1,
    destAddress: '10.0.0.2',
    destPort: 2,
  });
  for (let i = 1; i < header.length; i++)
    assert.equal(parseProxyHeader(header.subarray(0, i)).kind, 'incomplete', `${i} bytes`);
  const mutate = (at: number, value: number) => {
    const b = Buffer.from(header);
    b[at] = value;
    return b;
  };
  assert.match(reason(parseProxyHeader(mutate(12, 0x11))), /version 1, expected 2/);
  assert.match(reason(parseProxyHeader(mutate(12, 0x22))), /unknown command 2/);
  assert.match(reason(parseProxyHeader(mutate(13, 0x41))), /unknown family/);
  assert.match(reason(parseProxyHeader(mutate(13, 0x13))), /unknown family/);
  assert.match(reason(parseProxyHeader(mutate(4, 0x01))), /not a PROXY protocol header/);
  // Announced address block too short for the family.
  const short = Buffer.from(header.subarray(0, 24));
  short.writeUInt16BE(8, 14);
  assert.match(reason(parseProxyHeader(short)), /address block of 8 bytes/);
  // A TLV running past the end.
  const badTlv = Buffer.concat([header, hex('01 0005 6832')]);
  badTlv.writeUInt16BE(12 + 5, 14);
  assert.match(reason(parseProxyHeader(badTlv)), /TLV/);
  // Bounded: a header announcing 60000 bytes is refused at once, not waited for.
  const huge = Buffer.from(header);
  huge.writeUInt16BE(60000, 14);
  assert.match(reason(parseProxyHeader(huge)), /more than/);
});

test('addresses: IPv6 text in RFC 5952 form; what Node reports is understood', () => {
  assert.equal(formatIPv6(hex('20010db8000000000001000000000001'), false), '2001:db8::1:0:0:1');
  assert.equal(formatIPv6(hex('00000000000000000000000000000000'), false), '::');
  assert.equal(formatIPv6(hex('20010db8000100000001000100010001'), false), '2001:db8:1:0:1:1:1:1');
  assert.equal(formatIPv6(hex('00000000000000000000ffff7f000001'), true), '127.0.0.1');
  assert.deepEqual(ipBytes('::ffff:127.0.0.1'), Buffer.from([127, 0, 0, 1]));
  assert.deepEqual(ipBytes('fe80::1%lo'), hex('fe800000000000000000000000000001'));
  assert.equal(ipBytes('example.com'), undefined);
});

// ---------------------------------------------------------------------------------------------
// Interoperability with HAProxy (skipped when haproxy is not installed)

const HAPROXY = ['/usr/sbin/haproxy', '/usr/local/sbin/haproxy', '/usr/bin/haproxy'].find((p) =>
  existsSync(p),
);

/** SIGTERM to the child's PID, SIGKILL if it is still there after 3 s; resolves once it is gone. */
async function stopByPid(child: ChildProcess): Promise<void> {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  const signal = (name: NodeJS.Signals) => {
    try {
      process.kill(child.pid!, name);
    } catch {
      // already gone
    }
  };
  signal('SIGTERM');
  const timer = setTimeout(() => signal('SIGKILL'), 3000);
  await exited;
  clearTimeout(timer);
}

/** `promise`, or a rejection naming `what` after `ms`. */
function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

async function freePort(): Promise<number> {
  const s = createServer();
  s.listen(0, '127.0.0.1');
  await once(s, 'listening');
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

async function waitForPort(port: number, host = '127.0.0.1', ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  for (;;) {
    const okay = await new Promise<boolean>((resolve) => {
      const s = connect({ host, port });
      s.on('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.on('error', () => resolve(false));
    });
    if (okay) return;
    if (Date.now() > end) throw new Error(`port ${port} never opened`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/**
 * A server that records what each connection sent up to "END", in the order the ENDs arrive
 * (probe connections that send no END are ignored).
 */
async function capture(): Promise<{ port: number; firsts: Promise<Buffer>[]; close(): Promise<void> }> {
  const resolvers: Array<(b: Buffer) => void> = [];
  const firsts = Array.from({ length: 8 }, () => new Promise<Buffer>((r) => resolvers.push(r)));
  const sockets = new Set<Socket>();
  let done = 0;
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => {});
    socket.on('close', () => sockets.delete(socket));
    let buf = Buffer.alloc(0);
    socket.on('data', (c: Buffer) => {
      buf = Buffer.concat([buf, c]);
      if (buf.includes('END')) resolvers[done++]?.(buf);
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    port: (server.address() as { port: number }).port,
    firsts,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

test('HAProxy interop: its send-proxy / send-proxy-v2 headers are what we encode and parse', {
  skip: !HAPROXY && 'haproxy not installed',
}, async () => {
  const cap = await capture();
  const [p1, p2, p3, p4] = [await freePort(), await freePort(), await freePort(), await freePort()];
  const dir = mkdtempSync(join(tmpdir(), 'fulcrum-pp-'));
  const cfg = join(dir, 'haproxy.cfg');
  const lb = await startBalancer(`
listeners: [{ name: tcp, protocol: tcp, listen: "127.0.0.1:0", pool: p }]
pools: [{ name: p, sendProxyProtocol: v2, servers: [{ address: "127.0.0.1:${p4}" }] }]
`);
  writeFileSync(
    cfg,
    `global
  maxconn 100
defaults
  mode tcp
  timeout connect 2s
  timeout client 10s
  timeout server 10s
frontend f1
  bind 127.0.0.1:${p1}
  default_backend v1
frontend f2
  bind 127.0.0.1:${p2}
  default_backend v2
frontend f3
  bind [::1]:${p3}
  default_backend v2
frontend f4
  bind 127.0.0.1:${p4} accept-proxy
  default_backend v1
backend v1
  server s 127.0.0.1:${cap.port} send-proxy
backend v2
  server s 127.0.0.1:${cap.port} send-proxy-v2
`,
  );
  let haproxy: ChildProcess | undefined;
  let haproxyLog = '';
  const clients: Socket[] = [];
  try {
    // -db: one foreground process (no daemon, no master-worker), so its PID is all there is to stop.
    haproxy = spawn(HAPROXY!, ['-db', '-f', cfg], { stdio: ['ignore', 'ignore', 'pipe'] });
    haproxy.on('error', () => {});
    haproxy.stderr!.setEncoding('utf8');
    haproxy.stderr!.on('data', (chunk: string) => {
      haproxyLog += chunk;
    });
    try {
      await waitForPort(p1);
      await waitForPort(p4);
    } catch (err) {
      throw new Error(`${(err as Error).message}; haproxy said:\n${haproxyLog}`);
    }
    const send = async (port: number, host = '127.0.0.1') => {
      const s = connect({ host, port });
      s.on('error', () => {});
      clients.push(s);
      await once(s, 'connect');
      s.write('END');
      return s;
    };
    // 1. HAProxy send-proxy (v1) from 127.0.0.1.
    const c1 = await send(p1);
    const got1 = await within(cap.firsts[0]!, 5000, 'connection 1 to reach the capture server');
    const want1 = encodeProxyV1({
      sourceAddress: '127.0.0.1',
      sourcePort: c1.localPort!,
      destAddress: '127.0.0.1',
      destPort: p1,
    });
    assert.deepEqual(got1, Buffer.concat([want1, Buffer.from('END')]));
    // 2. HAProxy send-proxy-v2 (TCP4).
    const c2 = await send(p2);
    const got2 = await within(cap.firsts[1]!, 5000, 'connection 2 to reach the capture server');
    const want2 = encodeProxyV2({
      sourceAddress: '127.0.0.1',
      sourcePort: c2.localPort!,
      destAddress: '127.0.0.1',
      destPort: p2,
    });
    assert.deepEqual(got2, Buffer.concat([want2, Buffer.from('END')]), 'HAProxy sends no TLVs by default');
    assert.deepEqual(ok(parseProxyHeader(got2)).endpoints, ok(parseProxyHeader(want2)).endpoints);
    // 3. HAProxy send-proxy-v2 from an IPv6 client (TCP6).
    const c3 = await send(p3, '::1');
    const got3 = await within(cap.firsts[2]!, 5000, 'connection 3 to reach the capture server');
    const want3 = encodeProxyV2({
      sourceAddress: '::1',
      sourcePort: c3.localPort!,
      destAddress: '::1',
      destPort: p3,
    });
    assert.deepEqual(got3, Buffer.concat([want3, Buffer.from('END')]), 'TCP6 block');
    assert.deepEqual(ok(parseProxyHeader(got3)).endpoints, ok(parseProxyHeader(want3)).endpoints);
    // 4. Fulcrum sendProxyProtocol v2 → HAProxy accept-proxy → send-proxy: HAProxy understood us.
    const c4 = await send(lb.port);
    const got4 = await within(cap.firsts[3]!, 5000, 'connection 4 to reach the capture server');
    assert.equal(got4.toString('latin1'), `PROXY TCP4 127.0.0.1 127.0.0.1 ${c4.localPort} ${lb.port}\r\nEND`);
  } finally {
    for (const c of clients) c.destroy();
    if (haproxy !== undefined) await stopByPid(haproxy);
    await lb.stop();
    await cap.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
