/**
 * Strict HTTP/1.1 message-head parsing (RFC 9112), for requests from clients and responses from
 * servers. Strictness is the point: request smuggling lives in the gaps between two parsers'
 * leniencies, so anything ambiguous is refused rather than guessed at: bare CR or LF line ends,
 * whitespace before a colon, obs-fold, control characters, Content-Length together with
 * Transfer-Encoding, conflicting (in requests, repeated) Content-Lengths, codings other than a
 * final "chunked".
 *
 * Input is the head as a latin1 string (one char per byte) WITHOUT the final CRLFCRLF. Parsed
 * results go into a caller-owned object that is reused across messages.
 */

/** tchar (RFC 9110 5.6.2) lookup. */
const TCHAR = new Uint8Array(128);
for (const c of "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") {
  TCHAR[c.charCodeAt(0)] = 1;
}

/** Body framing of a message. */
export enum Framing {
  None = 0,
  Length = 1,
  Chunked = 2,
  /** Response only: body runs until the server closes the connection. */
  UntilClose = 3,
}

/**
 * A parsed message head. Classes with every field set in the constructor give V8 one stable
 * shape per kind, so the parser's property stores stay fast.
 */
export class MessageHead {
  /** Lowercased header names, in order; values with surrounding whitespace removed. */
  names: string[] = [];
  values: string[] = [];
  count = 0;
  /** HTTP/1.x minor version. */
  minor = 1;
  framing: Framing = Framing.None;
  contentLength = 0;
  /** Connection: close (or HTTP/1.0 without keep-alive). */
  close = false;
  /** Connection: upgrade with an Upgrade header. */
  upgrade = false;
  /** Lowercased header names listed in Connection (beyond close/keep-alive/upgrade), to strip. */
  connectionTokens: string[] | null = null;
  /** Why parsing failed, for the log. */
  error = '';
  /** The head as received (latin1), and where each header line starts in it. */
  source = '';
  lineStarts: number[] = [];
}

export class RequestHead extends MessageHead {
  method = '';
  /** Origin-form target to forward (absolute-form is converted). */
  target = '';
  /** Path part of the target (before '?'), for routing. */
  path = '';
  /** Host header (or absolute-form authority), lowercased, without port. */
  host = '';
  /** Host header value as received, for X-Forwarded-Host. */
  hostHeader = '';
  expectContinue = false;
  /** The target was in absolute-form: its authority replaces the Host header (RFC 9112 3.2.2). */
  absoluteForm = false;
  /** The request came over HTTP/2 (the head was built from its header block): Via says 2. */
  h2 = false;
  /** X-Request-Id as received, or the one generated for the server (set by assignRequestId). */
  requestId = '';
}

export class ResponseHead extends MessageHead {
  status = 0;
  reason = '';
  /** The server's `Keep-Alive: timeout=N` hint in ms, or -1 when it gave none. */
  keepAliveMs = -1;
}

export function newRequestHead(): RequestHead {
  return new RequestHead();
}

export function newResponseHead(): ResponseHead {
  return new ResponseHead();
}

/** Index of the value of header `name` (lowercase), or -1. */
export function headerIndex(head: MessageHead, name: string): number {
  const names = head.names;
  for (let i = 0; i < head.count; i++) if (names[i] === name) return i;
  return -1;
}

export function headerValue(head: MessageHead, name: string): string | undefined {
  const i = headerIndex(head, name);
  return i < 0 ? undefined : head.values[i];
}

const HEAD_SP = Buffer.from('HEAD ', 'latin1');

/**
 * For a request refused before its head could be parsed (too large): sets `head.method` from the
 * first bytes of `buf` (after empty lines), "HEAD" when they are "HEAD ", else "" (never the
 * previous request's), so that the error answer to a HEAD has no body. Allocates nothing.
 */
export function setUnparsedMethod(head: RequestHead, buf: Buffer): void {
  let at = 0;
  while (at + 1 < buf.length && buf[at] === 13 && buf[at + 1] === 10) at += 2; // RFC 9112 2.2
  const isHead = buf.length - at >= 5 && buf.compare(HEAD_SP, 0, 5, at, at + 5) === 0;
  head.method = isHead ? 'HEAD' : '';
}

/** Finds the end of a head (index of CRLFCRLF) in `buf` starting the search at `from`. */
export function findHeadEnd(buf: Buffer, from: number): number {
  return buf.indexOf('\r\n\r\n', Math.max(from, 0), 'latin1');
}

enum Scan {
  Ok = 0,
}

/**
 * Control characters never allowed in a head (CR and LF are checked per line, as line ends).
 * One native scan of the whole head replaces a per-character loop over every value.
 */
const CONTROL = /[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]/;

/**
 * Lower-cased field names seen so far, by their spelling on the wire: an open-addressing table
 * looked up by a hash of the name's chars taken while they are checked, so that a name seen
 * before costs no string at all (`Content-Type` is sliced and lower-cased once per process).
 * Bounded: past MAX_NAMES spellings, new ones are sliced and lower-cased each time.
 */
const NAME_SLOTS = 1024;
const MAX_NAMES = 512;
const nameRaw: (string | undefined)[] = [];
const nameLower: string[] = [];
for (let i = 0; i < NAME_SLOTS; i++) {
  nameRaw.push(undefined);
  nameLower.push('');
}
let namesKept = 0;

/** The lower-case name of `s[from, to)`, whose chars hash to `hash`. */
function internName(s: string, from: number, to: number, hash: number): string {
  const len = to - from;
  let slot = hash & (NAME_SLOTS - 1);
  for (;;) {
    const raw = nameRaw[slot];
    if (raw === undefined) break;
    if (raw.length === len && s.startsWith(raw, from)) return nameLower[slot]!;
    slot = (slot + 1) & (NAME_SLOTS - 1);
  }
  const raw = s.slice(from, to);
  const lower = raw.toLowerCase();
  if (namesKept < MAX_NAMES) {
    namesKept++;
    nameRaw[slot] = raw;
    nameLower[slot] = lower;
  }
  return lower;
}

/**
 * Recent short field values, by a hash of their chars: a server repeats its Content-Type,
 * Connection and Keep-Alive values on every response. Direct-mapped (a new value takes its
 * slot), so it never grows. Only values V8 would copy anyway (under 13 chars): a longer slice
 * refers to the whole head it came from, which the cache would then keep alive.
 */
const VALUE_SLOTS = 512;
const MAX_CACHED_VALUE = 12;
const valueCache: string[] = [];
for (let i = 0; i < VALUE_SLOTS; i++) valueCache.push('');

/** The field value `s[from, to)`; the same string as last time when it is a short repeated one. */
function fieldValue(s: string, from: number, to: number): string {
  const len = to - from;
  if (len > MAX_CACHED_VALUE || len === 0) return s.slice(from, to);
  let hash = len;
  for (let i = from; i < to; i++) hash = (Math.imul(hash, 31) + s.charCodeAt(i)) | 0;
  const slot = hash & (VALUE_SLOTS - 1);
  const cached = valueCache[slot]!;
  if (cached.length === len && s.startsWith(cached, from)) return cached;
  const value = s.slice(from, to);
  valueCache[slot] = value;
  return value;
}

/**
 * Parses header lines from `pos` (just after the start line's CRLF) to the end.
 * Returns 0 or an error status (400; 431 when there are too many headers).
 */
function parseFields(s: string, pos: number, m: MessageHead, maxHeaders: number): number {
  const end = s.length;
  m.count = 0;
  m.source = s;
  if (CONTROL.test(s)) return fail(m, 'control character in head');
  while (pos < end) {
    const lineEnd = s.indexOf('\r\n', pos);
    const stop = lineEnd < 0 ? end : lineEnd;
    // Lines end at CRLF only: a CR or LF anywhere else is refused (smuggling hides there).
    const cr = s.indexOf('\r', pos);
    const lf = s.indexOf('\n', pos);
    if ((cr >= 0 && cr < stop) || (lf >= 0 && lf <= stop)) return fail(m, 'bare CR or LF in head');
    const first = s.charCodeAt(pos);
    if (first === 32 || first === 9) return fail(m, 'obs-fold (line starting with whitespace)');
    const colon = s.indexOf(':', pos);
    if (colon < 0 || colon >= stop) return fail(m, 'invalid header line (no colon)');
    if (colon === pos) return fail(m, 'empty header name');
    let hash = 0;
    for (let i = pos; i < colon; i++) {
      const c = s.charCodeAt(i);
      if (c >= 128 || TCHAR[c] !== 1) {
        return fail(
          m,
          c === 32 || c === 9 ? 'whitespace before colon in header' : 'invalid character in header name',
        );
      }
      hash = (Math.imul(hash, 31) + c) | 0;
    }
    // value: OWS field-value OWS
    const vStart = owsFrom(s, colon + 1, stop);
    const vEnd = owsTo(s, vStart, stop);
    if (m.count >= maxHeaders) return fail(m, 'too many header fields', 431);
    const n = m.count++;
    m.lineStarts[n] = pos;
    m.names[n] = internName(s, pos, colon, hash);
    m.values[n] = fieldValue(s, vStart, vEnd);
    if (lineEnd < 0) break;
    pos = lineEnd + 2;
  }
  return Scan.Ok;
}

/**
 * Header lines `from` to `to` (exclusive) exactly as received, each ending in CRLF: forwarding
 * runs of unchanged lines as one slice beats rebuilding them field by field.
 */
export function rawLines(m: MessageHead, from: number, to: number): string {
  const start = m.lineStarts[from]!;
  return to < m.count ? m.source.slice(start, m.lineStarts[to]) : `${m.source.slice(start)}\r\n`;
}

let lastKeepAlive = '';
let lastKeepAliveMs = -1;

/**
 * The `timeout=N` parameter (seconds) of a Keep-Alive field value, in ms; -1 when it has none.
 * A server sends the same value on every response: the last one is remembered.
 */
export function keepAliveTimeoutMs(value: string): number {
  if (value === lastKeepAlive) return lastKeepAliveMs;
  const m = /(?:^|[\s,;])timeout\s*=\s*"?(\d{1,9})/i.exec(value);
  lastKeepAlive = value;
  lastKeepAliveMs = m === null ? -1 : Number(m[1]) * 1000;
  return lastKeepAliveMs;
}

/** Connection-specific fields a proxy must not forward (RFC 9110 7.6.1). No hashing: by length. */
export function isHopByHop(name: string): boolean {
  switch (name.length) {
    case 2:
      return name === 'te';
    case 7:
      return name === 'upgrade' || name === 'trailer';
    case 10:
      return name === 'connection' || name === 'keep-alive';
    case 16:
      return name === 'proxy-connection';
    case 17:
      return name === 'transfer-encoding';
    default:
      return false;
  }
}

/**
 * The start of `s[from, to)` past the SP and HTAB (OWS) that lead it. Not String.trim, which also
 * removes U+00A0: in a latin1 head that is byte 0xA0, which is no whitespace to HTTP
 * (`Content-Length: 5\xA0` is invalid, not 5).
 */
function owsFrom(s: string, from: number, to: number): number {
  while (from < to && (s.charCodeAt(from) === 32 || s.charCodeAt(from) === 9)) from++;
  return from;
}

/** The end of `s[from, to)` before the OWS that trails it. */
function owsTo(s: string, from: number, to: number): number {
  while (to > from && (s.charCodeAt(to - 1) === 32 || s.charCodeAt(to - 1) === 9)) to--;
  return to;
}

/** `s` without the OWS around it. */
function trimOws(s: string): string {
  const from = owsFrom(s, 0, s.length);
  const to = owsTo(s, from, s.length);
  return from === 0 && to === s.length ? s : s.slice(from, to);
}

/** Field line `i` of `m` ends in OWS that holds an HTAB (its value is trimmed already). */
function htabAfterValue(m: MessageHead, i: number): boolean {
  let at = i + 1 < m.count ? m.lineStarts[i + 1]! - 2 : m.source.length;
  for (;;) {
    const c = m.source.charCodeAt(--at);
    if (c === 9) return true;
    if (c !== 32) return false;
  }
}

/** The decimal in `s` from `from` to `to`, OWS around it allowed; -1 if empty, not digits or over 15 digits. */
function decimal(s: string, start: number, end: number): number {
  const from = owsFrom(s, start, end);
  const to = owsTo(s, from, end);
  if (from === to || to - from > 15) return -1;
  let n = 0;
  for (let i = from; i < to; i++) {
    const d = s.charCodeAt(i) - 48;
    if (d < 0 || d > 9) return -1;
    n = n * 10 + d;
  }
  return n;
}

function fail(m: MessageHead, why: string, status = 400): number {
  m.error = why;
  return status;
}

/** `s[from, to)` is `word` (lower-case ASCII) in any case. */
function isWord(s: string, from: number, to: number, word: string): boolean {
  if (to - from !== word.length) return false;
  for (let i = 0; i < word.length; i++) {
    const c = s.charCodeAt(from + i);
    if ((c >= 65 && c <= 90 ? c + 32 : c) !== word.charCodeAt(i)) return false;
  }
  return true;
}

/**
 * Works out framing and connection semantics from the parsed fields, shared by requests and
 * responses. Returns 0, or the status to answer (400 bad framing, 501 unknown coding).
 */
function interpretFields(m: MessageHead, isRequest: boolean): number {
  let cl = -1;
  let clCount = 0;
  let te: string | null = null;
  let connection: string | null = null;
  let hasUpgradeHeader = false;
  let keepAlive: string | null = null;
  m.connectionTokens = null;
  m.upgrade = false;
  for (let i = 0; i < m.count; i++) {
    const name = m.names[i]!;
    const value = m.values[i]!;
    switch (name) {
      case 'content-length': {
        // The line is forwarded as received, and Node's parser refuses one with an HTAB after
        // the digits (though it is OWS): refused here too, so that no server reads it otherwise.
        if (isRequest && htabAfterValue(m, i)) return fail(m, 'HTAB after the Content-Length value');
        // Values in a list or in repeated fields must agree (requests refuse repeats, below).
        let start = 0;
        for (;;) {
          const comma = value.indexOf(',', start);
          const n = decimal(value, start, comma < 0 ? value.length : comma);
          if (n < 0) return fail(m, `invalid Content-Length "${value}"`);
          if (cl >= 0 && n !== cl) return fail(m, 'conflicting Content-Length values');
          cl = n;
          clCount++;
          if (comma < 0) break;
          start = comma + 1;
        }
        break;
      }
      case 'transfer-encoding':
        te = te === null ? value : `${te}, ${value}`;
        break;
      case 'connection':
        connection = connection === null ? value : `${connection}, ${value}`;
        break;
      case 'upgrade':
        hasUpgradeHeader = true;
        break;
      case 'keep-alive':
        keepAlive = value;
        break;
    }
  }
  // Even the same length twice is refused in a request, as Node (llhttp) does: the field is
  // forwarded as received, and a server that reads "5, 5" as invalid and ignores it would take
  // the body for the next request. RFC 9110 8.6 lets a recipient refuse it.
  if (clCount > 1 && isRequest) return fail(m, 'repeated Content-Length');
  if (!isRequest) (m as ResponseHead).keepAliveMs = keepAlive === null ? -1 : keepAliveTimeoutMs(keepAlive);
  if (te !== null) {
    if (cl >= 0) return fail(m, 'both Content-Length and Transfer-Encoding');
    if (isRequest && m.minor === 0) return fail(m, 'Transfer-Encoding in an HTTP/1.0 request');
    const codings = te.indexOf(',') < 0 ? [te.toLowerCase()] : te.toLowerCase().split(',');
    const last = trimOws(codings[codings.length - 1]!);
    for (let k = 0; k < codings.length; k++) {
      const c = trimOws(codings[k]!);
      if (c === '' || (c === 'chunked' && k !== codings.length - 1)) {
        return fail(m, `invalid Transfer-Encoding "${te}"`);
      }
    }
    if (last !== 'chunked') {
      // A request whose body length cannot be determined is refused (RFC 9112 6.3);
      // a response is read until the connection closes.
      if (isRequest)
        return fail(m, `unsupported Transfer-Encoding "${te}"`, codings.length === 1 ? 501 : 400);
      m.framing = Framing.UntilClose;
    } else if (codings.length !== 1) {
      // Other codings before chunked are legal but we only pass "chunked" through unchanged.
      return fail(m, `unsupported Transfer-Encoding "${te}"`, isRequest ? 501 : 502);
    } else {
      m.framing = Framing.Chunked;
    }
    m.contentLength = -1;
  } else if (cl >= 0) {
    m.framing = cl === 0 ? Framing.None : Framing.Length;
    m.contentLength = cl;
  } else {
    m.framing = isRequest ? Framing.None : Framing.UntilClose;
    m.contentLength = isRequest ? 0 : -1;
  }

  let sawClose = false;
  let sawKeepAlive = false;
  if (connection !== null) {
    // Token by token in place: "keep-alive", "close" and "upgrade" cost no string.
    let start = 0;
    for (;;) {
      const comma = connection.indexOf(',', start);
      const end = comma < 0 ? connection.length : comma;
      const from = owsFrom(connection, start, end);
      const to = owsTo(connection, from, end);
      if (isWord(connection, from, to, 'close')) sawClose = true;
      else if (isWord(connection, from, to, 'keep-alive')) sawKeepAlive = true;
      else if (isWord(connection, from, to, 'upgrade')) m.upgrade = hasUpgradeHeader;
      else if (to > from) {
        const token = connection.slice(from, to).toLowerCase();
        if (token === 'content-length' || (isRequest && token === 'host')) {
          // Connection options are stripped before forwarding (RFC 9110 7.6.1), but these fields
          // must reach the next hop: without Content-Length the body would be read as the next
          // message. RFC 9110 forbids sending them as options; refused rather than forwarded.
          return fail(m, `Connection lists ${token}, which every recipient needs`, isRequest ? 400 : 502);
        }
        if (m.connectionTokens === null) m.connectionTokens = [];
        m.connectionTokens.push(token);
      }
      if (comma < 0) break;
      start = comma + 1;
    }
  }
  // HTTP/1.0 closes unless it asks for keep-alive; "close" wins over "keep-alive".
  const close = sawClose || (m.minor === 0 && !sawKeepAlive);
  m.close = close;
  return Scan.Ok;
}

/** The usual methods, so that a request's method is a constant rather than a new string. */
const METHODS = ['GET', 'POST', 'HEAD', 'PUT', 'DELETE', 'OPTIONS', 'PATCH', 'TRACE', 'CONNECT'];

/** The method `s[from, to)` (checked tchars). */
function methodName(s: string, from: number, to: number): string {
  const len = to - from;
  for (const m of METHODS) if (m.length === len && s.startsWith(m, from)) return m;
  return s.slice(from, to);
}

/**
 * Parses a request head. Returns 0 on success, else the status to answer the client with
 * (400, 431, 501, 505) and `head.error` saying why.
 */
export function parseRequestHead(s: string, head: RequestHead, maxHeaders = 100): number {
  head.error = '';
  head.requestId = '';
  let pos = 0;
  // RFC 9112 2.2: ignore at least one empty line before the request line.
  while (s.startsWith('\r\n', pos)) pos += 2;
  // Until the method is read and checked, the previous request's must not answer for this one:
  // a refusal of a request that starts like a HEAD gets no body (RFC 9110 9.3.2).
  head.method = s.startsWith('HEAD ', pos) ? 'HEAD' : '';
  const lineEnd = s.indexOf('\r\n', pos);
  // The request line is s[pos, le): read in place, no string made of it.
  const le = lineEnd < 0 ? s.length : lineEnd;
  const cr = s.indexOf('\r', pos);
  const lf = s.indexOf('\n', pos);
  if ((cr >= 0 && cr < le) || (lf >= 0 && lf < le)) return fail(head, 'bare CR or LF in request line');
  const sp1 = s.indexOf(' ', pos);
  const sp2 = sp1 < 0 || sp1 >= le ? -1 : s.indexOf(' ', sp1 + 1);
  const sp3 = sp2 < 0 || sp2 >= le ? -1 : s.indexOf(' ', sp2 + 1);
  if (sp1 <= pos || sp2 < 0 || sp2 >= le || (sp3 >= 0 && sp3 < le))
    return fail(head, 'malformed request line');
  for (let i = pos; i < sp1; i++) {
    const c = s.charCodeAt(i);
    if (c >= 128 || TCHAR[c] !== 1) return fail(head, 'invalid method');
  }
  const method = methodName(s, pos, sp1);
  if (sp2 === sp1 + 1) return fail(head, 'empty request target');
  for (let i = sp1 + 1; i < sp2; i++) {
    const c = s.charCodeAt(i);
    if (c <= 32 || c >= 127) return fail(head, 'invalid character in request target');
  }
  const target = s.slice(sp1 + 1, sp2);
  if (le - sp2 === 9 && s.startsWith('HTTP/1.', sp2 + 1) && s.charCodeAt(le - 1) === 49) head.minor = 1;
  else if (le - sp2 === 9 && s.startsWith('HTTP/1.', sp2 + 1) && s.charCodeAt(le - 1) === 48) head.minor = 0;
  else {
    const version = s.slice(sp2 + 1, le);
    if (/^HTTP\/[0-9]\.[0-9]$/.test(version)) return fail(head, `unsupported version ${version}`, 505);
    return fail(head, 'malformed HTTP version');
  }
  head.method = method;
  // 501, not 405: a reverse proxy has no tunnel for any target, and 405 needs an Allow list.
  if (method === 'CONNECT') return fail(head, 'CONNECT is not supported by a reverse proxy', 501);

  const status = lineEnd < 0 ? 0 : parseFields(s, lineEnd + 2, head, maxHeaders);
  if (lineEnd < 0) head.count = 0;
  if (status !== 0) return status;

  // Host: exactly one for HTTP/1.1 (RFC 9112 3.2).
  let hostIndex = -1;
  head.expectContinue = false;
  head.absoluteForm = false;
  for (let i = 0; i < head.count; i++) {
    const n = head.names[i]!;
    if (n === 'host') {
      if (hostIndex >= 0) return fail(head, 'more than one Host header');
      hostIndex = i;
    } else if (n === 'expect' && head.values[i]!.toLowerCase() === '100-continue') {
      head.expectContinue = true;
    }
  }
  if (hostIndex < 0 && head.minor === 1) return fail(head, 'missing Host header');
  head.hostHeader = hostIndex < 0 ? '' : head.values[hostIndex]!;

  // Absolute-form (http://host/path) is turned into origin-form; its authority is the host.
  let authority = head.hostHeader;
  if (target.charCodeAt(0) === 47 /* / */) {
    head.target = target;
  } else if (target === '*' && method === 'OPTIONS') {
    head.target = target;
  } else {
    const m = /^https?:\/\/([^/?#]*)(.*)$/i.exec(target);
    if (m === null) return fail(head, 'invalid request target form');
    // The target's authority replaces Host, but a Host with an invalid value is still refused
    // (RFC 9112 3.2), and never forwarded (as X-Forwarded-Host or otherwise).
    if (head.hostHeader !== '' && !validAuthority(head.hostHeader)) {
      return fail(head, `invalid Host "${head.hostHeader}"`);
    }
    authority = m[1]!;
    head.absoluteForm = true;
    head.hostHeader = authority;
    head.target = m[2] === '' ? '/' : m[2]!.charCodeAt(0) === 47 ? m[2]! : `/${m[2]}`;
  }
  if (!validAuthority(authority) && !(authority === '' && head.minor === 0)) {
    return fail(head, `invalid Host "${authority}"`);
  }
  head.host = hostWithoutPort(authority);
  const q = head.target.indexOf('?');
  head.path = q < 0 ? head.target : head.target.slice(0, q);
  return interpretFields(head, true);
}

let lastReasonPhrase = '';

/** The reason phrase `s[from, to)`: the last one again when it is the same (servers repeat theirs). */
function reasonPhrase(s: string, from: number, to: number): string {
  if (to - from !== lastReasonPhrase.length || !s.startsWith(lastReasonPhrase, from)) {
    lastReasonPhrase = s.slice(from, to);
  }
  return lastReasonPhrase;
}

/** Parses a response head from a server. Returns 0 or 502 (with `head.error`). */
export function parseResponseHead(s: string, head: ResponseHead, maxHeaders = 200): number {
  head.error = '';
  const lineEnd = s.indexOf('\r\n');
  // The status line is s[0, le): read in place.
  const le = lineEnd < 0 ? s.length : lineEnd;
  // status-line = HTTP-version SP 3DIGIT SP [reason-phrase]; a missing final SP is tolerated.
  if (!s.startsWith('HTTP/1.') || le < 12 || s.charCodeAt(8) !== 32) {
    return fail(head, 'malformed status line', 502);
  }
  const minor = s.charCodeAt(7) - 48;
  if (minor !== 0 && minor !== 1) return fail(head, 'unsupported response version', 502);
  const d0 = s.charCodeAt(9) - 48;
  const d1 = s.charCodeAt(10) - 48;
  const d2 = s.charCodeAt(11) - 48;
  if (d0 < 1 || d0 > 5 || d1 < 0 || d1 > 9 || d2 < 0 || d2 > 9) return fail(head, 'invalid status code', 502);
  if (le > 12 && s.charCodeAt(12) !== 32) return fail(head, 'malformed status line', 502);
  head.minor = minor;
  head.status = d0 * 100 + d1 * 10 + d2;
  for (let i = 13; i < le; i++) {
    const c = s.charCodeAt(i);
    if ((c < 32 && c !== 9) || c === 127) return fail(head, 'control character in reason phrase', 502);
  }
  head.reason = le > 13 ? reasonPhrase(s, 13, le) : '';
  const status = lineEnd < 0 ? 0 : parseFields(s, lineEnd + 2, head, maxHeaders);
  if (lineEnd < 0) head.count = 0;
  if (status !== 0) {
    head.error = `response: ${head.error}`;
    return 502;
  }
  if (interpretFields(head, false) !== 0) return 502;
  return 0;
}

/** Response framing given the request method (HEAD and 1xx/204/304 have no body). */
export function responseHasBody(method: string, status: number): boolean {
  return !(method === 'HEAD' || status < 200 || status === 204 || status === 304);
}

const AUTHORITY = /^(?:\[[0-9a-fA-F:.]+\]|[A-Za-z0-9._~!$&'()*+,;=%-]*)(?::[0-9]*)?$/;

function validAuthority(a: string): boolean {
  return a.length > 0 && a.length <= 255 && AUTHORITY.test(a);
}

let lastAuthority = '';
let lastHost = '';

/** "Example.COM:8080" → "example.com"; "[::1]:80" → "[::1]". Trailing dot dropped. The last one is remembered. */
export function hostWithoutPort(authority: string): string {
  if (authority === lastAuthority) return lastHost;
  lastAuthority = authority;
  lastHost = hostOf(authority);
  return lastHost;
}

function hostOf(authority: string): string {
  let end = authority.length;
  const colon = authority.lastIndexOf(':');
  if (colon >= 0 && authority.indexOf(']', colon) < 0) end = colon;
  if (end > 0 && authority.charCodeAt(end - 1) === 46) end--;
  const host = authority.slice(0, end);
  // Most hosts arrive lowercase already: skip the copy then.
  return /[A-Z]/.test(host) ? host.toLowerCase() : host;
}
