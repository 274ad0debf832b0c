/**
 * A reference reading of PROXY protocol headers for fuzz tests, written apart from
 * src/proxy/proxyProtocol.ts straight from HAProxy's proxy-protocol.txt (slow and simple: regular
 * expressions and node:net), plus Fulcrum's documented policy where the specification leaves a
 * choice (v2 headers up to 16 + 4096 bytes, TLVs that must tile the rest, no UDP on a tcp
 * listener). The verdict is what a balancer with acceptProxyProtocol must do with the bytes.
 */
import { isIPv4, isIPv6 } from 'node:net';

export type ProxyVerdict =
  /** Close: nothing may reach a server. */
  | { kind: 'refuse' }
  /** Accept a header of `length` bytes; `source`/`dest` undefined means the real connection. */
  | { kind: 'accept'; length: number; source?: [string, number]; dest?: [string, number] };

const SIG = Buffer.from('\r\n\r\n\0\r\nQUIT\n', 'latin1');
const V2_MAX = 16 + 4096;

/** The verdict on `bytes`, everything the client sends before closing its side. */
export function referenceVerdict(bytes: Buffer): ProxyVerdict {
  if (bytes.length >= 12 && bytes.subarray(0, 12).equals(SIG)) return v2(bytes);
  return v1(bytes);
}

const PORT = '(0|[1-9][0-9]{0,4})';

function v1(bytes: Buffer): ProxyVerdict {
  // The line: "PROXY " then printable ASCII, ending at the first CRLF, 107 bytes at most.
  const text = bytes.toString('latin1', 0, Math.min(bytes.length, 107));
  const end = text.indexOf('\r\n');
  if (!text.startsWith('PROXY ') || end < 0) return { kind: 'refuse' };
  const line = text.slice(6, end);
  if (!/^[\x20-\x7e]*$/.test(line)) return { kind: 'refuse' };
  const length = end + 2;
  if (line === 'UNKNOWN' || line.startsWith('UNKNOWN ')) return { kind: 'accept', length };
  const m = new RegExp(`^(TCP4|TCP6) (\\S+) (\\S+) ${PORT} ${PORT}$`).exec(line);
  if (m === null) return { kind: 'refuse' };
  const [, proto, src, dst, sport, dport] = m as unknown as [string, string, string, string, string, string];
  const ok = (a: string) => (proto === 'TCP4' ? isIPv4(a) : /^[0-9a-fA-F:]+$/.test(a) && isIPv6(a));
  if (!ok(src) || !ok(dst) || Number(sport) > 65535 || Number(dport) > 65535) return { kind: 'refuse' };
  return { kind: 'accept', length, source: [src, Number(sport)], dest: [dst, Number(dport)] };
}

function v2(bytes: Buffer): ProxyVerdict {
  if (bytes.length < 16) return { kind: 'refuse' };
  const version = bytes[12]! >> 4;
  const command = bytes[12]! & 0xf;
  const family = bytes[13]! >> 4;
  const transport = bytes[13]! & 0xf;
  const len = bytes.readUInt16BE(14);
  if (version !== 2 || command > 1 || family > 3 || transport > 2) return { kind: 'refuse' };
  if (16 + len > V2_MAX || bytes.length < 16 + len) return { kind: 'refuse' };
  const length = 16 + len;
  const addressed = command === 1 && family !== 0 && transport !== 0;
  const size = [0, 12, 36, 216][family]!;
  if (addressed) {
    if (len < size) return { kind: 'refuse' };
    for (let at = 16 + size; at < length; ) {
      if (at + 3 > length) return { kind: 'refuse' };
      at += 3 + bytes.readUInt16BE(at + 1);
      if (at > length) return { kind: 'refuse' };
    }
  }
  if (!addressed || family === 3) return { kind: 'accept', length };
  if (transport === 2) return { kind: 'refuse' }; // UDP announced to a tcp listener
  const n = family === 1 ? 4 : 16;
  const ip = (at: number) =>
    n === 4
      ? [...bytes.subarray(at, at + 4)].join('.')
      : [0, 1, 2, 3, 4, 5, 6, 7].map((g) => bytes.readUInt16BE(at + 2 * g).toString(16)).join(':');
  return {
    kind: 'accept',
    length,
    source: [ip(16), bytes.readUInt16BE(16 + 2 * n)],
    dest: [ip(16 + n), bytes.readUInt16BE(18 + 2 * n)],
  };
}

/** An IP literal as 8 numbers (IPv4 as IPv4-mapped), for comparing texts of any form. */
export function ipGroups(text: string): number[] {
  let t = text;
  if (isIPv4(t)) t = `::ffff:${t}`;
  const tail = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(t);
  if (tail !== null) {
    const [a, b, c, d] = tail.slice(1).map(Number) as [number, number, number, number];
    t = `${t.slice(0, tail.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head, rest] = t.includes('::') ? (t.split('::') as [string, string]) : [t, undefined];
  const h = head === '' ? [] : head.split(':');
  const r = rest === undefined || rest === '' ? [] : rest.split(':');
  const zeros = rest === undefined ? [] : new Array<string>(8 - h.length - r.length).fill('0');
  return [...h, ...zeros, ...r].map((g) => Number.parseInt(g, 16));
}
