/**
 * Reads the server name (SNI) of a TLS ClientHello, and nothing else: the TLS record layer and
 * the handshake header are followed just far enough to gather one ClientHello, which may arrive
 * in any number of TCP reads and TLS records, then its extensions are walked for `server_name`.
 * The bytes are only looked at; the caller forwards them untouched.
 */

/** Most bytes read while waiting for a complete ClientHello (HAProxy's default buffer size). */
export const MAX_CLIENT_HELLO = 16 * 1024;

const RECORD_HANDSHAKE = 22;
const HANDSHAKE_CLIENT_HELLO = 1;
const EXT_SERVER_NAME = 0;
const NAME_TYPE_HOST = 0;
/** A TLSPlaintext fragment is at most 2^14 bytes (RFC 8446 5.1). */
const MAX_FRAGMENT = 16 * 1024;
const HOST_NAME = /^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?(?:\.[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?)*$/;

export type HelloResult =
  | { kind: 'incomplete' }
  | { kind: 'invalid'; reason: string }
  /** `sni`: lower-cased, without a trailing dot; null when the client sent none. */
  | { kind: 'done'; sni: string | null };

const INCOMPLETE: HelloResult = { kind: 'incomplete' };

/**
 * A streaming reader of one ClientHello: feed it the client's reads in order until it answers
 * `done` or `invalid`. It copies each byte of the handshake message once (into a buffer sized by
 * the handshake header) and allocates nothing else per read.
 */
export class ClientHelloReader {
  /** Bytes seen so far (record headers included), against MAX_CLIENT_HELLO. */
  private total = 0;
  /** The record header being read, and how much of it. */
  private readonly header = Buffer.alloc(5);
  private headerFill = 0;
  /** Fragment bytes of the current record still to come. */
  private recordLeft = 0;
  /** The handshake header (type and length). */
  private readonly hsHeader = Buffer.alloc(4);
  private hsHeaderFill = 0;
  /** The handshake body (the ClientHello), once its length is known. */
  private body: Buffer | null = null;
  private bodyFill = 0;
  private result: HelloResult = INCOMPLETE;

  push(chunk: Uint8Array): HelloResult {
    if (this.result.kind !== 'incomplete') return this.result;
    this.total += chunk.length;
    let i = 0;
    while (i < chunk.length) {
      if (this.recordLeft === 0) {
        const n = Math.min(5 - this.headerFill, chunk.length - i);
        this.header.set(chunk.subarray(i, i + n), this.headerFill);
        this.headerFill += n;
        i += n;
        if (this.headerFill < 5) break;
        this.headerFill = 0;
        const bad = this.checkRecordHeader();
        if (bad !== undefined) return this.end({ kind: 'invalid', reason: bad });
        continue;
      }
      const n = Math.min(this.recordLeft, chunk.length - i);
      this.recordLeft -= n;
      const r = this.handshakeBytes(chunk.subarray(i, i + n));
      i += n;
      if (r !== undefined) return this.end(r);
    }
    if (this.total > MAX_CLIENT_HELLO) {
      return this.end({ kind: 'invalid', reason: `no complete ClientHello in ${MAX_CLIENT_HELLO} bytes` });
    }
    return INCOMPLETE;
  }

  private end(r: HelloResult): HelloResult {
    this.result = r;
    this.body = null;
    return r;
  }

  private checkRecordHeader(): string | undefined {
    const h = this.header;
    if (h[0] !== RECORD_HANDSHAKE) return 'not a TLS handshake';
    // Major version 3 (SSL 3.0 to TLS 1.3 all say 3.x in the record layer).
    if (h[1] !== 3) return 'not a TLS handshake (record version)';
    const length = h.readUInt16BE(3);
    if (length === 0 || length > MAX_FRAGMENT) return `invalid TLS record length ${length}`;
    this.recordLeft = length;
    return undefined;
  }

  /** Fragment bytes of handshake records; a result once the ClientHello is complete. */
  private handshakeBytes(bytes: Uint8Array): HelloResult | undefined {
    let i = 0;
    if (this.body === null) {
      const n = Math.min(4 - this.hsHeaderFill, bytes.length);
      this.hsHeader.set(bytes.subarray(0, n), this.hsHeaderFill);
      this.hsHeaderFill += n;
      i = n;
      if (this.hsHeaderFill < 4) return undefined;
      if (this.hsHeader[0] !== HANDSHAKE_CLIENT_HELLO)
        return { kind: 'invalid', reason: 'not a ClientHello' };
      const length = this.hsHeader.readUIntBE(1, 3);
      if (length > MAX_CLIENT_HELLO) {
        return { kind: 'invalid', reason: `ClientHello of ${length} bytes, more than ${MAX_CLIENT_HELLO}` };
      }
      this.body = Buffer.allocUnsafe(length);
      this.bodyFill = 0;
    }
    const body = this.body;
    const n = Math.min(body.length - this.bodyFill, bytes.length - i);
    body.set(bytes.subarray(i, i + n), this.bodyFill);
    this.bodyFill += n;
    if (this.bodyFill < body.length) return undefined;
    return parseClientHello(body);
  }
}

/** The server name of a complete ClientHello body (after the 4-byte handshake header). */
export function parseClientHello(b: Buffer): HelloResult {
  const invalid = (what: string): HelloResult => ({
    kind: 'invalid',
    reason: `malformed ClientHello (${what})`,
  });
  // legacy_version (2), random (32)
  let p = 34;
  if (b.length < p + 1) return invalid('too short');
  const sessionId = b[p]!;
  if (sessionId > 32) return invalid('session id');
  p += 1 + sessionId;
  if (b.length < p + 2) return invalid('cipher suites');
  const suites = b.readUInt16BE(p);
  if (suites < 2 || suites % 2 !== 0) return invalid('cipher suites');
  p += 2 + suites;
  if (b.length < p + 1) return invalid('compression methods');
  p += 1 + b[p]!;
  if (p > b.length) return invalid('compression methods');
  // No extensions at all (a very old client): no SNI.
  if (p === b.length) return { kind: 'done', sni: null };
  if (b.length < p + 2) return invalid('extensions');
  const end = p + 2 + b.readUInt16BE(p);
  if (end > b.length) return invalid('extensions length');
  p += 2;
  while (p + 4 <= end) {
    const type = b.readUInt16BE(p);
    const length = b.readUInt16BE(p + 2);
    p += 4;
    if (p + length > end) return invalid('extension length');
    if (type === EXT_SERVER_NAME) return serverName(b, p, p + length);
    p += length;
  }
  if (p !== end) return invalid('extensions');
  return { kind: 'done', sni: null };
}

/** The host_name of a server_name extension's data (RFC 6066 3). */
function serverName(b: Buffer, start: number, end: number): HelloResult {
  const invalid: HelloResult = { kind: 'invalid', reason: 'malformed server_name extension' };
  if (end - start < 2 || start + 2 + b.readUInt16BE(start) !== end) return invalid;
  let p = start + 2;
  while (p + 3 <= end) {
    const type = b[p]!;
    const length = b.readUInt16BE(p + 1);
    p += 3;
    if (p + length > end) return invalid;
    if (type === NAME_TYPE_HOST) {
      let name = b.toString('latin1', p, p + length).toLowerCase();
      if (name.endsWith('.')) name = name.slice(0, -1);
      if (name.length === 0 || name.length > 253 || !HOST_NAME.test(name)) {
        return { kind: 'invalid', reason: 'server_name is not a host name' };
      }
      return { kind: 'done', sni: name };
    }
    p += length;
  }
  return p === end ? { kind: 'done', sni: null } : invalid;
}
