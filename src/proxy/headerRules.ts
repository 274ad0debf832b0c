/**
 * The header rules of the forwarding path, the same for every front: which fields are
 * connection-specific (hop-by-hop, never forwarded), what a proxy adds (X-Forwarded-For, -Proto,
 * -Host, Via), and whose X-Forwarded-* to believe (trusted proxies only).
 */
import type { CidrSet } from '../core/cidr.js';
import { Framing, isHopByHop, type MessageHead, type RequestHead, rawLines } from './http/headParser.js';
import type { HeadWriter } from './http/headWriter.js';
import { newRequestId } from './requestId.js';

/** Who sent a request, as the header rules need it. */
export interface ForwardedFor {
  /** The peer address of the client connection (IPv4 unmapped). */
  peerIp: string;
  /** The peer is a trusted proxy: its X-Forwarded-Proto and -Host are kept. */
  trustedPeer: boolean;
  /** The scheme the client used to reach us. */
  proto: 'http' | 'https';
}

/** The lines every forwarded head ends with. */
const PROTO_LINE = { http: 'x-forwarded-proto: http\r\n', https: 'x-forwarded-proto: https\r\n' } as const;
const VIA_END = ['via: 1.0 fulcrum\r\n\r\n', 'via: 1.1 fulcrum\r\n\r\n'] as const;
const VIA_END_H2 = 'via: 2 fulcrum\r\n\r\n';

/**
 * Sets `r.requestId`: the request's X-Request-Id (the last one), else a new id, made once per
 * request so that every try sends the same one.
 */
export function assignRequestId(r: RequestHead): void {
  const received = receivedRequestId(r);
  if (received !== undefined) r.requestId = received;
  else if (r.requestId === '') r.requestId = newRequestId();
}

/**
 * The request id an access-log line carries: the one sent to the server, else (a request
 * answered by the balancer itself) the client's own X-Request-Id, else none.
 */
export function loggedRequestId(r: RequestHead): string {
  return r.requestId !== '' ? r.requestId : (receivedRequestId(r) ?? '');
}

/** The request's own X-Request-Id (the last one), if it has one. */
function receivedRequestId(r: RequestHead): string | undefined {
  for (let i = r.count - 1; i >= 0; i--) if (r.names[i] === 'x-request-id') return r.values[i]!;
  return undefined;
}

/** Header lines `from` to `to` (exclusive) of `m` exactly as received, each ending in CRLF. */
function writeRawLines(m: MessageHead, from: number, to: number, w: HeadWriter): void {
  const start = m.lineStarts[from]!;
  if (to < m.count) return w.chars(m.source, start, m.lineStarts[to]!);
  w.chars(m.source, start, m.source.length);
  w.text('\r\n');
}

/**
 * Writes the HTTP/1.1 head sent to the server into `w`: unchanged header lines copied as raw
 * runs, hop-by-hop fields and those named in Connection dropped, X-Forwarded-* and Via added.
 * `serverAddress` names the server for a request without Host (HTTP/1.0), since HTTP/1.1 servers
 * require one. A request without X-Request-Id gets one (kept in `r.requestId`, the same on every
 * try: see `assignRequestId`).
 */
export function writeUpstreamRequestHead(
  r: RequestHead,
  from: ForwardedFor,
  serverAddress: string,
  w: HeadWriter,
): void {
  w.text(r.method);
  w.text(' ');
  w.text(r.target);
  w.text(' HTTP/1.1\r\n');
  let xff = false;
  let upgrade = '';
  let keepProto = false;
  let keepHost = false;
  const tokens = r.connectionTokens;
  let run = -1;
  let hasId = false;
  for (let i = 0; i < r.count; i++) {
    const name = r.names[i]!;
    let keep = true;
    if (name.length === 12 && name === 'x-request-id') {
      hasId = true;
      r.requestId = r.values[i]!;
    }
    if (name === 'host' && r.absoluteForm) {
      // A proxy makes Host from an absolute-form target, never forwards the one received.
      keep = false;
    } else if (isHopByHop(name)) {
      if (name === 'upgrade' && r.upgrade) upgrade = r.values[i]!;
      keep = false;
    } else if (tokens?.includes(name)) {
      keep = false;
    } else if (name.length >= 15 && name.startsWith('x-forwarded-')) {
      if (name === 'x-forwarded-for') {
        xff = true;
        keep = false;
      } else if (name === 'x-forwarded-proto') {
        // X-Forwarded-Proto/Host are believed only from trusted proxies.
        keep = from.trustedPeer;
        keepProto ||= keep;
      } else if (name === 'x-forwarded-host') {
        keep = from.trustedPeer;
        keepHost ||= keep;
      }
    }
    if (keep) {
      if (run < 0) run = i;
    } else if (run >= 0) {
      writeRawLines(r, run, i, w);
      run = -1;
    }
  }
  if (run >= 0) writeRawLines(r, run, r.count, w);
  if (r.hostHeader === '') {
    w.text('host: ');
    w.text(serverAddress);
    w.text('\r\n');
  } else if (r.absoluteForm) {
    w.text('host: ');
    w.text(r.hostHeader);
    w.text('\r\n');
  }
  if (r.framing === Framing.Chunked) w.text('transfer-encoding: chunked\r\n');
  if (upgrade !== '') {
    w.text('connection: upgrade\r\nupgrade: ');
    w.text(upgrade);
    w.text('\r\n');
  }
  // The X-Forwarded-For values received, in order, then the peer.
  w.text('x-forwarded-for: ');
  if (xff) {
    // As the values joined with ", " would be, where empty values before the first non-empty
    // one add nothing.
    let any = false;
    for (let i = 0; i < r.count; i++) {
      if (r.names[i] !== 'x-forwarded-for') continue;
      const v = r.values[i]!;
      if (any) w.text(', ');
      else if (v === '') continue;
      w.text(v);
      any = true;
    }
    if (any) w.text(', ');
  }
  w.text(from.peerIp);
  w.text('\r\n');
  if (!keepProto) w.text(PROTO_LINE[from.proto]);
  if (!keepHost && r.hostHeader !== '') {
    w.text('x-forwarded-host: ');
    w.text(r.hostHeader);
    w.text('\r\n');
  }
  if (!hasId) {
    if (r.requestId === '') r.requestId = newRequestId();
    w.text('x-request-id: ');
    w.text(r.requestId);
    w.text('\r\n');
  }
  if (r.h2) w.text(VIA_END_H2);
  else if (r.minor === 0 || r.minor === 1) w.text(VIA_END[r.minor]);
  else {
    w.text('via: 1.');
    w.text(String(r.minor));
    w.text(' fulcrum\r\n\r\n');
  }
}

/**
 * Writes the end-to-end fields of a message into `w` as raw header lines: hop-by-hop fields and
 * those named in its Connection header removed.
 */
export function writeEndToEndLines(m: MessageHead, w: HeadWriter): void {
  const tokens = m.connectionTokens;
  let run = -1;
  for (let i = 0; i < m.count; i++) {
    const name = m.names[i]!;
    if (!(isHopByHop(name) || tokens?.includes(name))) {
      if (run < 0) run = i;
    } else if (run >= 0) {
      writeRawLines(m, run, i, w);
      run = -1;
    }
  }
  if (run >= 0) writeRawLines(m, run, m.count, w);
}

/**
 * Every field of a message as raw header lines (each ending in CRLF), as received: interim and
 * 101 responses keep Connection and Upgrade. (A final response's head is built by
 * `writeEndToEndLines`.)
 */
export function allFieldLines(m: MessageHead): string {
  return m.count === 0 ? '' : rawLines(m, 0, m.count);
}

/** The values of every field `name` of a message joined with `sep`, or null when there is none. */
export function joinedValues(m: MessageHead, name: string, sep: string): string | null {
  let out: string | null = null;
  for (let i = 0; i < m.count; i++) {
    if (m.names[i] === name) out = out === null ? m.values[i]! : `${out}${sep}${m.values[i]}`;
  }
  return out;
}

/** The request's Cookie fields joined (RFC 9113 8.2.3 allows several), or null. */
export function cookieHeader(r: RequestHead): string | null {
  return joinedValues(r, 'cookie', '; ');
}

/** Every Set-Cookie value of a response (sticky sessions in learn mode read them). */
export function setCookies(m: MessageHead): string[] {
  const out: string[] = [];
  for (let i = 0; i < m.count; i++) if (m.names[i] === 'set-cookie') out.push(m.values[i]!);
  return out;
}

/**
 * The client's address for balancing and logs: the peer, or, when the peer is a trusted proxy,
 * the address in X-Forwarded-For found by walking back over trusted proxies.
 */
export function clientIpOf(r: RequestHead, peerIp: string, trusted: CidrSet | null): string {
  if (trusted === null || !trusted.has(peerIp)) return peerIp;
  const xff = joinedValues(r, 'x-forwarded-for', ',');
  if (xff === null) return peerIp;
  const hops = xff.split(',');
  for (let i = hops.length - 1; i >= 0; i--) {
    const ip = hops[i]!.trim();
    if (i === 0 || !trusted.has(ip)) return ip;
  }
  return peerIp;
}
