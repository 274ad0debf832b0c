/**
 * Follows a chunked body (RFC 9112 7.1) byte by byte to find where it ends, refusing anything
 * malformed: non-hex or oversized chunk sizes, whitespace around sizes, control characters in
 * extensions, missing CRLFs. The proxy forwards the bytes unchanged (the receiver sees exactly
 * the framing we validated), or, for HTTP/1.0 clients, only the data (`onData`).
 */
enum St {
  Size = 0,
  SizeMore = 1,
  Ext = 2,
  SizeLf = 3,
  Data = 4,
  DataCr = 5,
  DataLf = 6,
  TrailerStart = 7,
  TrailerLine = 8,
  TrailerLf = 9,
  EndLf = 10,
  Done = 11,
  Error = 12,
}

/** 13 hex digits = 52 bits: every size is exact in a double. */
const MAX_SIZE_DIGITS = 13;
/** Bound on chunk extensions and trailers together, per message. */
const MAX_META_BYTES = 16 * 1024;

export const CHUNKED_MORE = -1;
export const CHUNKED_ERROR = -2;

export type DataSink = (buf: Buffer, start: number, end: number) => void;

export class ChunkedDecoder {
  private st = St.Size;
  private remaining = 0;
  private digits = 0;
  private meta = 0;
  error = '';

  reset(): void {
    this.st = St.Size;
    this.remaining = 0;
    this.digits = 0;
    this.meta = 0;
    this.error = '';
  }

  get done(): boolean {
    return this.st === St.Done;
  }

  /**
   * Consumes `buf` from `start`. Returns the index just past the end of the body when it ends in
   * this buffer, CHUNKED_MORE when more bytes are needed, CHUNKED_ERROR on malformed framing.
   * `onData`, when given, receives the chunk data ranges.
   */
  feed(buf: Buffer, start: number, onData?: DataSink): number {
    let i = start;
    const len = buf.length;
    while (i < len) {
      switch (this.st) {
        case St.Data: {
          const take = Math.min(this.remaining, len - i);
          if (onData !== undefined) onData(buf, i, i + take);
          i += take;
          this.remaining -= take;
          if (this.remaining === 0) this.st = St.DataCr;
          continue;
        }
        case St.Size:
        case St.SizeMore: {
          const c = buf[i]!;
          const v = hexValue(c);
          if (v >= 0) {
            if (++this.digits > MAX_SIZE_DIGITS) return this.fail('chunk size too large');
            this.remaining = this.remaining * 16 + v;
            this.st = St.SizeMore;
          } else if (this.st === St.Size) {
            return this.fail('chunk size missing');
          } else if (c === 0x3b /* ; */) {
            this.st = St.Ext;
          } else if (c === 0x0d) {
            this.st = St.SizeLf;
          } else {
            return this.fail('invalid character after chunk size');
          }
          break;
        }
        case St.Ext: {
          const c = buf[i]!;
          if (c === 0x0d) this.st = St.SizeLf;
          else if ((c < 0x20 && c !== 0x09) || c === 0x7f)
            return this.fail('control character in chunk extension');
          else if (++this.meta > MAX_META_BYTES) return this.fail('chunk extensions too long');
          break;
        }
        case St.SizeLf:
          if (buf[i] !== 0x0a) return this.fail('expected LF after chunk size');
          this.digits = 0;
          this.st = this.remaining === 0 ? St.TrailerStart : St.Data;
          break;
        case St.DataCr:
          if (buf[i] !== 0x0d) return this.fail('chunk data longer than its size');
          this.st = St.DataLf;
          break;
        case St.DataLf:
          if (buf[i] !== 0x0a) return this.fail('expected LF after chunk data');
          this.st = St.Size;
          break;
        case St.TrailerStart:
          if (buf[i] === 0x0d) {
            this.st = St.EndLf;
            break;
          }
          this.st = St.TrailerLine;
          continue;
        case St.TrailerLine: {
          const c = buf[i]!;
          if (c === 0x0d) this.st = St.TrailerLf;
          else if (c === 0x0a || (c < 0x20 && c !== 0x09) || c === 0x7f) {
            return this.fail('control character in trailer');
          } else if (++this.meta > MAX_META_BYTES) return this.fail('trailers too long');
          break;
        }
        case St.TrailerLf:
          if (buf[i] !== 0x0a) return this.fail('expected LF after trailer');
          this.st = St.TrailerStart;
          break;
        case St.EndLf:
          if (buf[i] !== 0x0a) return this.fail('expected LF after last chunk');
          this.st = St.Done;
          return i + 1;
        case St.Done:
          return i;
        case St.Error:
          return CHUNKED_ERROR;
      }
      i++;
    }
    return CHUNKED_MORE;
  }

  private fail(why: string): number {
    this.st = St.Error;
    this.error = why;
    return CHUNKED_ERROR;
  }
}

function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x61 && c <= 0x66) return c - 0x57;
  if (c >= 0x41 && c <= 0x46) return c - 0x37;
  return -1;
}
