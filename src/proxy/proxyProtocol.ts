/**
 * The PROXY protocol, versions 1 (text) and 2 (binary), as specified in HAProxy's
 * doc/proxy-protocol.txt: encoding (toward servers, so that they see the real client address) and
 * strict, bounded, incremental parsing (from a balancer in front of a listener).
 *
 * Addresses are IP literals as Node reports them; IPv4-mapped IPv6 addresses (::ffff:1.2.3.4) are
 * treated as IPv4. Parsed addresses come out canonical: dotted IPv4, RFC 5952 IPv6.
 */
import { isIPv4 } from 'node:net';

export type ProxyVersion = 'v1' | 'v2';

export interface ProxyEndpoints {
  sourceAddress: string;
  sourcePort: number;
  destAddress: string;
  destPort: number;
}

/** The 12-byte signature that starts every version 2 header. */
export const V2_SIGNATURE = Buffer.from([
  0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a,
]);
/** Longest version 1 line, CRLF included (the specification's worst case). */
export const V1_MAX_LENGTH = 107;
/**
 * Longest version 2 header accepted (16 bytes + addresses + TLVs). The specification allows up to
 * 16 + 65535; real senders (HAProxy, AWS NLB, Envoy) stay far below this.
 */
export const V2_MAX_LENGTH = 16 + 4096;
const V1_PREFIX = Buffer.from('PROXY ', 'latin1');

// ---------------------------------------------------------------------------------------------
// Encoding

/**
 * A header announcing a TCP (or, v2 only, UDP) connection from `source` to `dest`. Two IPv4
 * addresses give TCP4 / family 0x11; otherwise both are sent as IPv6 (IPv4 ones mapped to
 * ::ffff:a.b.c.d), TCP6 / 0x21. Addresses that are not IP literals give "PROXY UNKNOWN" (v1) or an
 * AF_UNSPEC block (v2), which receivers take as "use the real connection".
 */
export function encodeProxyHeader(
  version: ProxyVersion,
  endpoints: ProxyEndpoints,
  transport: 'tcp' | 'udp' = 'tcp',
): Buffer {
  return version === 'v1' ? encodeProxyV1(endpoints) : encodeProxyV2(endpoints, transport);
}

export function encodeProxyV1(e: ProxyEndpoints): Buffer {
  const src = ipBytes(e.sourceAddress);
  const dst = ipBytes(e.destAddress);
  if (src === undefined || dst === undefined || !validPort(e.sourcePort) || !validPort(e.destPort)) {
    return Buffer.from('PROXY UNKNOWN\r\n', 'latin1');
  }
  const v4 = src.length === 4 && dst.length === 4;
  const s = v4 ? formatIPv4(src, 0) : formatIPv6(to16(src), false);
  const d = v4 ? formatIPv4(dst, 0) : formatIPv6(to16(dst), false);
  return Buffer.from(`PROXY ${v4 ? 'TCP4' : 'TCP6'} ${s} ${d} ${e.sourcePort} ${e.destPort}\r\n`, 'latin1');
}

export function encodeProxyV2(e: ProxyEndpoints, transport: 'tcp' | 'udp' = 'tcp'): Buffer {
  const src = ipBytes(e.sourceAddress);
  const dst = ipBytes(e.destAddress);
  if (src === undefined || dst === undefined || !validPort(e.sourcePort) || !validPort(e.destPort)) {
    const out = Buffer.alloc(16);
    V2_SIGNATURE.copy(out, 0);
    out[12] = 0x21; // version 2, PROXY
    out[13] = 0x00; // AF_UNSPEC, UNSPEC; length 0
    return out;
  }
  const v4 = src.length === 4 && dst.length === 4;
  const size = v4 ? 4 : 16;
  const len = size * 2 + 4;
  const out = Buffer.alloc(16 + len);
  V2_SIGNATURE.copy(out, 0);
  out[12] = 0x21; // version 2, command PROXY
  out[13] = (v4 ? 0x10 : 0x20) | (transport === 'tcp' ? 0x01 : 0x02);
  out.writeUInt16BE(len, 14);
  (v4 ? src : to16(src)).copy(out, 16);
  (v4 ? dst : to16(dst)).copy(out, 16 + size);
  out.writeUInt16BE(e.sourcePort, 16 + size * 2);
  out.writeUInt16BE(e.destPort, 18 + size * 2);
  return out;
}

/** A version 2 LOCAL header (a connection the balancer made for itself, e.g. a health check). */
export function encodeProxyV2Local(): Buffer {
  const out = Buffer.alloc(16);
  V2_SIGNATURE.copy(out, 0);
  out[12] = 0x20;
  return out;
}

// ---------------------------------------------------------------------------------------------
// Parsing

export type ProxyParse =
  | { kind: 'incomplete' }
  | { kind: 'invalid'; reason: string }
  | {
      kind: 'ok';
      /** Bytes of the header; what follows is the client's data. */
      length: number;
      version: 1 | 2;
      /**
       * The addresses the header carries; undefined for v1 UNKNOWN, v2 LOCAL and v2 AF_UNSPEC or
       * AF_UNIX, where the receiver must use the real connection's endpoints.
       */
      endpoints: ProxyEndpoints | undefined;
      /** For a v2 header with endpoints: the proxied transport. */
      transport: 'tcp' | 'udp';
    };

const INCOMPLETE: ProxyParse = { kind: 'incomplete' };

function invalid(reason: string): ProxyParse {
  return { kind: 'invalid', reason };
}

/**
 * Parses a PROXY header at the start of `buf` (everything received so far). "incomplete" means
 * more bytes are needed; "invalid" comes as early as the bytes allow (a wrong first byte is
 * enough), so that a connection can be aborted at once, as the specification recommends.
 * Never reads beyond V1_MAX_LENGTH / V2_MAX_LENGTH bytes.
 */
export function parseProxyHeader(buf: Buffer): ProxyParse {
  if (buf.length === 0) return INCOMPLETE;
  if (buf[0] === 0x0d) return parseV2(buf);
  if (buf[0] === 0x50) return parseV1(buf);
  return invalid('not a PROXY protocol header');
}

function parseV1(buf: Buffer): ProxyParse {
  const n = Math.min(buf.length, V1_PREFIX.length);
  for (let i = 0; i < n; i++) {
    if (buf[i] !== V1_PREFIX[i]) return invalid('not a PROXY protocol header');
  }
  // The CR of a line of V1_MAX_LENGTH bytes sits at index V1_MAX_LENGTH - 2: a CR may be found
  // at indexes below V1_MAX_LENGTH - 1 only, so that CRLF included the line never exceeds 107.
  const crLimit = V1_MAX_LENGTH - 1;
  const limit = Math.min(buf.length, crLimit);
  let end = -1;
  for (let i = V1_PREFIX.length; i < limit; i++) {
    const c = buf[i]!;
    if (c === 0x0d) {
      if (i + 1 >= buf.length) return INCOMPLETE;
      if (buf[i + 1] !== 0x0a) return invalid('v1 line: CR not followed by LF');
      end = i;
      break;
    }
    // Only printable US-ASCII and spaces before the CRLF; a lone LF is not a line end.
    if (c < 0x20 || c > 0x7e) return invalid('v1 line: unexpected control or non-ASCII byte');
  }
  if (end < 0) return buf.length >= crLimit ? invalid('v1 line longer than 107 bytes') : INCOMPLETE;
  const line = buf.toString('latin1', V1_PREFIX.length, end);
  const length = end + 2;
  if (line === 'UNKNOWN' || line.startsWith('UNKNOWN ')) {
    // "the receiver must ignore anything presented before the CRLF"
    return { kind: 'ok', length, version: 1, endpoints: undefined, transport: 'tcp' };
  }
  const fields = line.split(' ');
  if (fields.length !== 5) return invalid('v1 line: expected "TCP4|TCP6 src dst sport dport"');
  const [proto, src, dst, sport, dport] = fields as [string, string, string, string, string];
  let srcText: string | undefined;
  let dstText: string | undefined;
  if (proto === 'TCP4') {
    srcText = strictIPv4(src);
    dstText = strictIPv4(dst);
  } else if (proto === 'TCP6') {
    const s = strictIPv6(src);
    const d = strictIPv6(dst);
    srcText = s && formatIPv6(s, true);
    dstText = d && formatIPv6(d, true);
  } else {
    return invalid(`v1 line: unknown protocol "${proto}"`);
  }
  if (srcText === undefined || dstText === undefined) return invalid(`v1 line: invalid ${proto} address`);
  const sourcePort = strictPort(sport);
  const destPort = strictPort(dport);
  if (sourcePort === undefined || destPort === undefined) return invalid('v1 line: invalid port');
  return {
    kind: 'ok',
    length,
    version: 1,
    endpoints: { sourceAddress: srcText, sourcePort, destAddress: dstText, destPort },
    transport: 'tcp',
  };
}

function parseV2(buf: Buffer): ProxyParse {
  const n = Math.min(buf.length, V2_SIGNATURE.length);
  for (let i = 0; i < n; i++) {
    if (buf[i] !== V2_SIGNATURE[i]) return invalid('not a PROXY protocol header');
  }
  if (buf.length < 13) return INCOMPLETE;
  const verCmd = buf[12]!;
  if (verCmd >> 4 !== 2) return invalid(`v2 header: version ${verCmd >> 4}, expected 2`);
  const command = verCmd & 0x0f;
  if (command > 1) return invalid(`v2 header: unknown command ${command}`);
  if (buf.length < 14) return INCOMPLETE;
  const fam = buf[13]!;
  const family = fam >> 4;
  const proto = fam & 0x0f;
  if (family > 3 || proto > 2) return invalid(`v2 header: unknown family/protocol 0x${hex2(fam)}`);
  if (buf.length < 16) return INCOMPLETE;
  const len = buf.readUInt16BE(14);
  const length = 16 + len;
  if (length > V2_MAX_LENGTH) return invalid(`v2 header: ${length} bytes, more than ${V2_MAX_LENGTH}`);
  if (buf.length < length) return INCOMPLETE;

  const addrLen = family === 1 ? 12 : family === 2 ? 36 : family === 3 ? 216 : 0;
  if (command === 1 && proto !== 0 && family !== 0 && len < addrLen) {
    return invalid(`v2 header: address block of ${len} bytes, expected at least ${addrLen}`);
  }
  // TLVs (after the addresses) must tile the rest exactly; their contents are ignored.
  const tlvStart = command === 1 && proto !== 0 && family !== 0 ? 16 + addrLen : -1;
  if (tlvStart >= 0) {
    let at = tlvStart;
    while (at < length) {
      if (at + 3 > length) return invalid('v2 header: truncated TLV');
      at += 3 + buf.readUInt16BE(at + 1);
      if (at > length) return invalid('v2 header: TLV longer than the header');
    }
  }
  const transport = proto === 2 ? 'udp' : 'tcp';
  // LOCAL, or an unspecified / UNIX address: the receiver uses the real endpoints.
  if (command === 0 || proto === 0 || family === 0 || family === 3) {
    return { kind: 'ok', length, version: 2, endpoints: undefined, transport };
  }
  const size = family === 1 ? 4 : 16;
  const src = buf.subarray(16, 16 + size);
  const dst = buf.subarray(16 + size, 16 + 2 * size);
  return {
    kind: 'ok',
    length,
    version: 2,
    endpoints: {
      sourceAddress: size === 4 ? formatIPv4(src, 0) : formatIPv6(src, true),
      sourcePort: buf.readUInt16BE(16 + 2 * size),
      destAddress: size === 4 ? formatIPv4(dst, 0) : formatIPv6(dst, true),
      destPort: buf.readUInt16BE(18 + 2 * size),
    },
    transport,
  };
}

// ---------------------------------------------------------------------------------------------
// Addresses

function hex2(n: number): string {
  return n.toString(16).padStart(2, '0');
}

function validPort(p: number): boolean {
  return Number.isInteger(p) && p >= 0 && p <= 65535;
}

const IPV4_STRICT = /^(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?:\.(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

/** Four decimal numbers 0–255 without leading zeros (the specification forbids them). */
function strictIPv4(text: string): string | undefined {
  return IPV4_STRICT.test(text) ? text : undefined;
}

function strictPort(text: string): number | undefined {
  if (!/^(?:0|[1-9]\d{0,4})$/.test(text)) return undefined;
  const n = Number(text);
  return n <= 65535 ? n : undefined;
}

/**
 * Hexadecimal groups of 1–4 digits separated by colons, at most one "::", 128 bits in total: no
 * embedded dotted IPv4 and no zone, as the specification's grammar has neither.
 */
function strictIPv6(text: string): Buffer | undefined {
  if (!/^[0-9A-Fa-f:]+$/.test(text) || text.length > 39) return undefined;
  return parseIPv6Groups(text);
}

function parseIPv6Groups(text: string): Buffer | undefined {
  const dbl = text.indexOf('::');
  if (dbl >= 0 && text.indexOf('::', dbl + 1) >= 0) return undefined;
  const head = dbl >= 0 ? text.slice(0, dbl) : text;
  const tail = dbl >= 0 ? text.slice(dbl + 2) : '';
  const h = head === '' ? [] : head.split(':');
  const t = tail === '' ? [] : tail.split(':');
  const count = h.length + t.length;
  if (dbl >= 0 ? count > 7 : count !== 8) return undefined;
  const out = Buffer.alloc(16);
  const put = (groups: string[], at: number): boolean => {
    for (let i = 0; i < groups.length; i++) {
      const g = groups[i]!;
      if (!/^[0-9A-Fa-f]{1,4}$/.test(g)) return false;
      out.writeUInt16BE(Number.parseInt(g, 16), (at + i) * 2);
    }
    return true;
  };
  if (!put(h, 0) || !put(t, 8 - t.length)) return undefined;
  return out;
}

/**
 * An IP literal as bytes: 4 for IPv4 (and IPv4-mapped IPv6), 16 for IPv6; undefined for anything
 * else. Accepts what Node reports (compressed IPv6, a dotted IPv4 tail, a zone, which is dropped).
 */
export function ipBytes(address: string | undefined): Buffer | undefined {
  if (address === undefined) return undefined;
  let text = address;
  if (text.startsWith('::ffff:') && isIPv4(text.slice(7))) text = text.slice(7);
  if (isIPv4(text)) return Buffer.from(text.split('.').map(Number));
  const zone = text.indexOf('%');
  if (zone >= 0) text = text.slice(0, zone);
  if (!text.includes(':')) return undefined;
  const lastColon = text.lastIndexOf(':');
  const tail = text.slice(lastColon + 1);
  if (tail.includes('.')) {
    if (!isIPv4(tail)) return undefined;
    const p = tail.split('.').map(Number) as [number, number, number, number];
    text = `${text.slice(0, lastColon + 1)}${((p[0] << 8) | p[1]).toString(16)}:${((p[2] << 8) | p[3]).toString(16)}`;
  }
  const bytes = parseIPv6Groups(text);
  if (bytes === undefined) return undefined;
  return isMappedV4(bytes) ? bytes.subarray(12) : bytes;
}

function isMappedV4(b: Buffer): boolean {
  for (let i = 0; i < 10; i++) if (b[i] !== 0) return false;
  return b[10] === 0xff && b[11] === 0xff;
}

/** 4 bytes → ::ffff:a.b.c.d as 16 bytes; 16 bytes unchanged. */
function to16(b: Buffer): Buffer {
  if (b.length === 16) return b;
  const out = Buffer.alloc(16);
  out[10] = 0xff;
  out[11] = 0xff;
  b.copy(out, 12);
  return out;
}

function formatIPv4(b: Buffer, at: number): string {
  return `${b[at]}.${b[at + 1]}.${b[at + 2]}.${b[at + 3]}`;
}

/**
 * RFC 5952 text: lower case, no leading zeros, the longest run of two or more zero groups (the
 * first one on a tie) as "::". With `unmap`, an IPv4-mapped address comes out as plain IPv4, the
 * way the rest of Fulcrum compares client addresses.
 */
export function formatIPv6(b: Buffer, unmap: boolean): string {
  if (unmap && isMappedV4(b)) return formatIPv4(b, 12);
  const groups: number[] = [];
  for (let i = 0; i < 8; i++) groups.push(b.readUInt16BE(i * 2));
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (from: number, to: number) =>
    groups
      .slice(from, to)
      .map((g) => g.toString(16))
      .join(':');
  if (bestStart < 0) return hex(0, 8);
  return `${hex(0, bestStart)}::${hex(bestStart + bestLen, 8)}`;
}
