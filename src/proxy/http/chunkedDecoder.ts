/**
 * Follows a chunked body (RFC 9112 7.1) byte by byte to find where it ends, refusing anything
 * malformed: non-hex or oversized chunk sizes, whitespace around sizes, chunk extensions outside
 * their grammar, trailer lines that are not field lines, trailers that only the header section
 * may carry (framing, Connection, Host), missing CRLFs. The proxy forwards the
 * bytes unchanged (the receiver sees exactly the framing we validated), or, for HTTP/1.0
 * clients, only the data (`onData`).
 *
 * The grammar checked (RFC 9112 7.1, 7.1.1, 7.1.2; RFC 9110 5.6.2, 5.6.4):
 *
 *     chunk          = chunk-size [ chunk-ext ] CRLF chunk-data CRLF
 *     chunk-size     = 1*HEXDIG
 *     chunk-ext      = *( ";" chunk-ext-name [ "=" chunk-ext-val ] )
 *     chunk-ext-name = token
 *     chunk-ext-val  = token / quoted-string
 *     quoted-string  = DQUOTE *( qdtext / quoted-pair ) DQUOTE
 *     last-chunk     = 1*"0" [ chunk-ext ] CRLF
 *     trailer-section = *( field-name ":" OWS field-value OWS CRLF )
 *
 * A trailer may not carry message framing or routing (RFC 9110 6.5.1), nor connection options:
 * one that tries is refused rather than forwarded, since a recipient that acts on it would frame
 * or route differently, or, for a `Connection: close` trailer (Node's parser honours it), refuse
 * the next request on a connection the proxy believes reusable.
 *
 * RFC 9112 allows BWS around ";" and "=" in extensions (and so after the size). It is refused
 * here, as llhttp does in strict mode (Node's parser answers 400): no client sends it, and a
 * line that our parser and the server's could read differently is exactly what not to forward.
 *
 * Everything is incremental: a buffer may end at any byte (inside a size, a quoted string,
 * right after a backslash); the state carries over to the next `feed`.
 */
enum St {
  /** First hex digit of a chunk size. */
  Size = 0,
  /** More hex digits, ";" or CR. */
  SizeMore = 1,
  SizeLf = 2,
  Data = 3,
  DataCr = 4,
  DataLf = 5,
  /** Start of a trailer line, or CR of the empty line ending the message. */
  TrailerStart = 6,
  TrailerLf = 7,
  EndLf = 8,
  Done = 9,
  Error = 10,
  // From here on, every byte counts against MAX_META_BYTES (one comparison: st >= ExtName).
  /** First character of an extension name (after ";"). */
  ExtName = 11,
  /** Rest of an extension name: tchar, "=", ";" or CR. */
  ExtNameMore = 12,
  /** First character of an extension value (after "="): tchar or DQUOTE. */
  ExtValue = 13,
  /** Rest of a token value: tchar, ";" or CR. */
  ExtToken = 14,
  /** Inside a quoted-string value. */
  ExtQuoted = 15,
  /** Right after a backslash inside a quoted-string. */
  ExtQuotedPair = 16,
  /** After the closing DQUOTE: ";" or CR. */
  ExtQuotedEnd = 17,
  /** Rest of a trailer field name, up to ":". */
  TrailerName = 18,
  /** A trailer field value, up to CR. */
  TrailerValue = 19,
}

/** 13 hex digits = 52 bits: every size is exact in a double. Leading zeros count too. */
const MAX_SIZE_DIGITS = 13;
/**
 * Bound on chunk extensions and trailers together, per message (what Node allows for extensions,
 * too). It also bounds every chunk-size line: a never-ending extension is cut off here.
 */
const MAX_META_BYTES = 16 * 1024;

export const CHUNKED_MORE = -1;
export const CHUNKED_ERROR = -2;

export type DataSink = (buf: Buffer, start: number, end: number) => void;

// Byte classes, one table lookup per byte of a size line or trailer.
/** tchar (RFC 9110 5.6.2). */
const C_TCHAR = 1;
/** qdtext (RFC 9110 5.6.4): HTAB, SP, "!", "#"-"[", "]"-"~", obs-text. */
const C_QDTEXT = 2;
/** What may follow a backslash, and field-value bytes: HTAB, SP, VCHAR, obs-text. */
const C_TEXT = 4;
const CLASS = new Uint8Array(256);
for (const c of "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") {
  CLASS[c.charCodeAt(0)]! |= C_TCHAR;
}
for (let c = 0; c < 256; c++) {
  const text = c === 0x09 || (c >= 0x20 && c !== 0x7f);
  if (text) CLASS[c]! |= C_TEXT;
  if (text && c !== 0x22 /* " */ && c !== 0x5c /* \ */) CLASS[c]! |= C_QDTEXT;
}
/** Trailer field names refused (lower case): fields only the header section may carry. */
const HEADER_ONLY: readonly Buffer[] = ['content-length', 'transfer-encoding', 'connection', 'host'].map(
  (n) => Buffer.from(n),
);
/** Every bit of HEADER_ONLY set: a name that could still be any of them. */
const ALL_HEADER_ONLY = (1 << HEADER_ONLY.length) - 1;

/** Hex digit values, -1 for anything else. */
const HEX = new Int8Array(256).fill(-1);
for (let c = 0; c < 10; c++) HEX[0x30 + c] = c;
for (let c = 0; c < 6; c++) {
  HEX[0x41 + c] = 10 + c;
  HEX[0x61 + c] = 10 + c;
}

/** Incremental validator of one chunked body at a time; `reset` before each message. */
export class ChunkedDecoder {
  private st = St.Size;
  private remaining = 0;
  private digits = 0;
  private meta = 0;
  /** Length of the trailer name read so far, and which HEADER_ONLY names it still matches (bits). */
  private nameLen = 0;
  private headerOnly = 0;
  private matched = 0;
  /** Why the body was refused (for the log), once `feed` returned CHUNKED_ERROR. */
  error = '';

  /** Makes the decoder ready for the next message. */
  reset(): void {
    this.st = St.Size;
    this.remaining = 0;
    this.digits = 0;
    this.meta = 0;
    this.error = '';
  }

  /** The whole body, last chunk and trailers included, has been seen. */
  get done(): boolean {
    return this.st === St.Done;
  }

  /**
   * Consumes `buf` from `start`. Returns the index just past the end of the body when it ends in
   * this buffer, CHUNKED_MORE when more bytes are needed, CHUNKED_ERROR on malformed framing
   * (then `error` says why; nothing of the buffer should be forwarded).
   * `onData`, when given, receives the chunk data ranges.
   */
  feed(buf: Buffer, start: number, onData?: DataSink): number {
    let i = start;
    const len = buf.length;
    while (i < len) {
      const st = this.st;
      if (st === St.Data) {
        const take = Math.min(this.remaining, len - i);
        if (onData !== undefined) onData(buf, i, i + take);
        i += take;
        this.remaining -= take;
        if (this.remaining === 0) this.st = St.DataCr;
        continue;
      }
      const c = buf[i]!;
      // Extension and trailer bytes are bounded per message.
      if (st >= St.ExtName && ++this.meta > MAX_META_BYTES) {
        return this.fail(st <= St.ExtQuotedEnd ? 'chunk extensions too long' : 'trailers too long');
      }
      switch (st) {
        case St.Size:
        case St.SizeMore: {
          const v = HEX[c]!;
          if (v >= 0) {
            if (++this.digits > MAX_SIZE_DIGITS) return this.fail('chunk size too large');
            this.remaining = this.remaining * 16 + v;
            this.st = St.SizeMore;
          } else if (st === St.Size) {
            return this.fail('chunk size missing');
          } else if (c === 0x3b /* ; */) {
            this.st = St.ExtName;
          } else if (c === 0x0d) {
            this.st = St.SizeLf;
          } else {
            return this.fail('invalid character after chunk size');
          }
          break;
        }
        case St.ExtName:
          if ((CLASS[c]! & C_TCHAR) === 0) return this.fail('chunk extension without a name');
          this.st = St.ExtNameMore;
          break;
        case St.ExtNameMore:
          if ((CLASS[c]! & C_TCHAR) !== 0) break;
          if (c === 0x3d /* = */) this.st = St.ExtValue;
          else if (c === 0x3b) this.st = St.ExtName;
          else if (c === 0x0d) this.st = St.SizeLf;
          else return this.fail('invalid character in chunk extension name');
          break;
        case St.ExtValue:
          if ((CLASS[c]! & C_TCHAR) !== 0) this.st = St.ExtToken;
          else if (c === 0x22 /* " */) this.st = St.ExtQuoted;
          else return this.fail('invalid chunk extension value');
          break;
        case St.ExtToken:
          if ((CLASS[c]! & C_TCHAR) !== 0) break;
          if (c === 0x3b) this.st = St.ExtName;
          else if (c === 0x0d) this.st = St.SizeLf;
          else return this.fail('invalid character in chunk extension value');
          break;
        case St.ExtQuoted:
          if ((CLASS[c]! & C_QDTEXT) !== 0) break;
          if (c === 0x22) this.st = St.ExtQuotedEnd;
          else if (c === 0x5c /* \ */) this.st = St.ExtQuotedPair;
          else return this.fail('invalid character in quoted chunk extension value');
          break;
        case St.ExtQuotedPair:
          if ((CLASS[c]! & C_TEXT) === 0) return this.fail('invalid quoted-pair in chunk extension value');
          this.st = St.ExtQuoted;
          break;
        case St.ExtQuotedEnd:
          if (c === 0x3b) this.st = St.ExtName;
          else if (c === 0x0d) this.st = St.SizeLf;
          else return this.fail('invalid character after quoted chunk extension value');
          break;
        case St.SizeLf:
          if (c !== 0x0a) return this.fail('expected LF after chunk size');
          this.digits = 0;
          this.st = this.remaining === 0 ? St.TrailerStart : St.Data;
          break;
        case St.DataCr:
          if (c !== 0x0d) return this.fail('chunk data longer than its size');
          this.st = St.DataLf;
          break;
        case St.DataLf:
          if (c !== 0x0a) return this.fail('expected LF after chunk data');
          this.st = St.Size;
          break;
        case St.TrailerStart:
          if (c === 0x0d) this.st = St.EndLf;
          else if ((CLASS[c]! & C_TCHAR) !== 0) {
            if (++this.meta > MAX_META_BYTES) return this.fail('trailers too long');
            this.nameLen = 0;
            this.headerOnly = ALL_HEADER_ONLY;
            this.nameByte(c);
            this.st = St.TrailerName;
          } else if (c === 0x20 || c === 0x09) return this.fail('obs-fold in trailer');
          else return this.fail('invalid trailer line');
          break;
        case St.TrailerName:
          if ((CLASS[c]! & C_TCHAR) !== 0) {
            if (this.headerOnly !== 0) this.nameByte(c);
            break;
          }
          if (c === 0x3a /* : */) {
            if (this.headerOnly !== 0 && this.isHeaderOnlyName()) {
              return this.fail(`${HEADER_ONLY[this.matched]} in trailers`);
            }
            this.st = St.TrailerValue;
          } else if (c === 0x20 || c === 0x09) return this.fail('whitespace in trailer name');
          else return this.fail('invalid character in trailer name');
          break;
        case St.TrailerValue:
          if ((CLASS[c]! & C_TEXT) !== 0) break;
          if (c === 0x0d) this.st = St.TrailerLf;
          else return this.fail('control character in trailer');
          break;
        case St.TrailerLf:
          if (c !== 0x0a) return this.fail('expected LF after trailer');
          this.st = St.TrailerStart;
          break;
        case St.EndLf:
          if (c !== 0x0a) return this.fail('expected LF after last chunk');
          this.st = St.Done;
          return i + 1;
        case St.Done:
          return i;
        case St.Error:
          return CHUNKED_ERROR;
      }
      i++;
    }
    return this.st === St.Error ? CHUNKED_ERROR : this.st === St.Done ? i : CHUNKED_MORE;
  }

  /** Narrows `headerOnly` to the names with tchar `c` at this position (ASCII case-insensitive). */
  private nameByte(c: number): void {
    // Setting 0x20 lower-cases letters; no other tchar becomes a letter or "-" by it.
    const lower = c | 0x20;
    for (let k = 0; k < HEADER_ONLY.length; k++) {
      if (HEADER_ONLY[k]![this.nameLen] !== lower) this.headerOnly &= ~(1 << k);
    }
    this.nameLen++;
  }

  /** The whole trailer name read is one of HEADER_ONLY (then `matched` says which). */
  private isHeaderOnlyName(): boolean {
    for (let k = 0; k < HEADER_ONLY.length; k++) {
      if ((this.headerOnly & (1 << k)) !== 0 && HEADER_ONLY[k]!.length === this.nameLen) {
        this.matched = k;
        return true;
      }
    }
    return false;
  }

  private fail(why: string): number {
    this.st = St.Error;
    this.error = why;
    return CHUNKED_ERROR;
  }
}
