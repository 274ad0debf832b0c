/**
 * Outgoing HTTP/1.1 heads built as bytes in a reusable buffer rather than as strings: the fields
 * forwarded unchanged are copied as byte ranges of the received head, ours are written in after
 * them, a small body can follow, and the whole goes out in one write. Building the same head by
 * string concatenation allocated every piece, the joined string and, at the write, its flat copy.
 */
import type { Writable } from 'node:stream';

/** Below this many bytes a range is copied by a loop: `Buffer.copy` of a part allocates a view. */
const LOOP_COPY = 256;

/**
 * Copies `src[from, to)` into `dst` at `at` and returns the bytes copied; a short range by a loop
 * (`Buffer.copy` of a part of its source allocates a view of that part on every call).
 */
export function copyRange(src: Buffer, from: number, to: number, dst: Buffer, at: number): number {
  if (to - from >= LOOP_COPY) return src.copy(dst, at, from, to);
  for (let i = from; i < to; i++) dst[at++] = src[i]!;
  return to - from;
}
/** How many views of the buffer are kept for reuse. */
const VIEWS = 8;
/** The size a writer starts with (it grows to the largest head it has built). */
const INITIAL = 4096;

/**
 * A head being built. `flush` writes it and starts over with the same memory, unless the socket
 * kept a reference to it (the write did not complete at once): then the next head goes into a
 * new buffer, so that no bytes still queued are ever overwritten.
 */
export class HeadWriter {
  private buf: Buffer = Buffer.allocUnsafeSlow(INITIAL);
  /**
   * Views of `buf` from 0, by their length modulo VIEWS: the heads of a steady load repeat their
   * lengths, and a view written before (and no longer held by any socket) serves again.
   */
  private readonly views: (Buffer | null)[] = new Array<Buffer | null>(VIEWS).fill(null);
  /** Bytes written so far. */
  length = 0;

  /** Starts a new head (what was built and not flushed is dropped). */
  reset(): void {
    this.length = 0;
  }

  /** Makes room for `n` more bytes. */
  private room(n: number): Buffer {
    const need = this.length + n;
    if (need <= this.buf.length) return this.buf;
    let size = this.buf.length * 2;
    while (size < need) size *= 2;
    const next = Buffer.allocUnsafeSlow(size);
    this.buf.copy(next, 0, 0, this.length);
    this.replace(next);
    return next;
  }

  /** A string whose chars are all below 256 (a latin1 head's text), one byte each. */
  text(s: string): void {
    this.chars(s, 0, s.length);
  }

  /** Chars `from` to `to` (exclusive) of a latin1 string. */
  chars(s: string, from: number, to: number): void {
    const n = to - from;
    if (n <= 0) return;
    const b = this.room(n);
    let at = this.length;
    if (n < LOOP_COPY) {
      for (let i = from; i < to; i++) b[at++] = s.charCodeAt(i);
    } else {
      at += b.write(from === 0 && to === s.length ? s : s.slice(from, to), at, n, 'latin1');
    }
    this.length = at;
  }

  /** Bytes `from` to `to` (exclusive) of `src`. */
  bytes(src: Buffer, from: number, to: number): void {
    const n = to - from;
    if (n <= 0) return;
    this.length += copyRange(src, from, to, this.room(n), this.length);
  }

  /**
   * Writes the head to `out` and starts over. Returns what `out.write` returned. Where the write
   * will be queued anyway (bytes already waiting, a TLS socket, whose writes always complete
   * later), the head goes as a string instead and the buffer stays ours.
   */
  flush(out: Writable): boolean {
    if (out.writableLength > 0 || (out as { encrypted?: boolean }).encrypted === true) {
      return out.write(this.takeString(), 'latin1');
    }
    const n = this.length;
    const slot = n % VIEWS;
    let view = this.views[slot]!;
    if (view === null || view.length !== n) {
      view = this.buf.subarray(0, n);
      this.views[slot] = view;
    }
    const ok = out.write(view);
    this.length = 0;
    // Still queued (the kernel did not take it all): the socket holds these bytes until they
    // are written, so the next head goes into a buffer of its own.
    if (out.writableLength > 0) this.replace(Buffer.allocUnsafeSlow(INITIAL));
    return ok;
  }

  /** Takes `next` as the buffer; views of the old one are dropped. */
  private replace(next: Buffer): void {
    this.buf = next;
    this.views.fill(null);
  }

  /** The head as a Buffer of its own (for a write that must be queued with others), and start over. */
  take(): Buffer {
    const copy = Buffer.allocUnsafe(this.length);
    this.buf.copy(copy, 0, 0, this.length);
    this.length = 0;
    return copy;
  }

  /** The head as a latin1 string, and start over (tests, and the rare paths that want a string). */
  takeString(): string {
    const s = this.buf.toString('latin1', 0, this.length);
    this.length = 0;
    return s;
  }
}

/**
 * The writer the HTTP/1.1 paths share: one thread, and every use builds and flushes a head
 * without calling out in between, so one is enough for the process.
 */
export const HEAD_WRITER = new HeadWriter();
