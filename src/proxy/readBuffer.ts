/**
 * The buffer one direction of a TCP relay, or an HTTP server connection, reads into (a socket's
 * `onread`), sized by what flows: 16 KiB while the connection trickles, a large size once a read
 * fills its buffer (a bulk transfer), back to 16 KiB after a run of small reads. The large size
 * is the reader's: 256 KiB for a TCP relay (fewer and larger reads and writes, measured at
 * 1.4–1.6× the throughput of 64 KiB reads on loopback), 64 KiB for HTTP responses. Buffers come from and go back to a
 * bounded process-wide pool, so an idle connection holds 16 KiB per direction (HAProxy's default
 * `bufsize`) and short connections allocate nothing for reading.
 *
 * A chunk handed to a socket write that did not complete at once is still to be read by the
 * kernel: its buffer stays with that write, the next read gets another, and it goes back to the
 * pool when the write is done. A reader that keeps a chunk without such a callback (an HTTP
 * response body written to a client that is not done with it) says so with `keep()`: the buffer
 * is then left to the GC.
 */
export const SMALL_READ = 16 * 1024;
export const LARGE_READ = 256 * 1024;
/** Small reads in a row, on a large buffer, before it is swapped for a small one. */
const SHRINK_AFTER = 8;

/** Spare buffers by size; each size keeps at most MAX_SPARE_BYTES of them. */
const spares = new Map<number, Buffer[]>();
const MAX_SPARE_BYTES = 4 * 1024 * 1024;

function take(size: number): Buffer {
  return spares.get(size)?.pop() ?? Buffer.allocUnsafe(size);
}

function give(buf: Buffer): void {
  let list = spares.get(buf.length);
  if (list === undefined) {
    list = [];
    spares.set(buf.length, list);
  }
  if (list.length * buf.length < MAX_SPARE_BYTES) list.push(buf);
}

export class ReadBuffer {
  readonly #largeSize: number;
  #buf: Buffer | null = null;
  #large = false;
  #smallRun = 0;
  /**
   * One entry per write of a chunk read here, in write order: the buffer when the write held it,
   * else null. Write callbacks come in the same order, so each one settles the oldest entry and
   * a held buffer goes back to the pool once its write is done, instead of to the GC.
   */
  readonly #writes: (Buffer | null)[] = [];
  #writesHead = 0;

  /** Pass to `socket.write(chunk, written)` for every chunk read into this buffer. */
  readonly written = (): void => {
    const buf = this.#writes[this.#writesHead];
    this.#writes[this.#writesHead++] = null;
    if (this.#writesHead === this.#writes.length) {
      this.#writes.length = 0;
      this.#writesHead = 0;
    }
    if (buf) give(buf);
  };

  /** `largeSize`: what the buffer grows to for bulk reads (LARGE_READ unless given). */
  constructor(largeSize = LARGE_READ) {
    this.#largeSize = largeSize;
  }

  /** For `onread.buffer`: the buffer the next read goes into. */
  readonly next = (): Buffer => {
    this.#buf ??= take(this.#large ? this.#largeSize : SMALL_READ);
    return this.#buf;
  };

  /**
   * After a read of `n` bytes into a buffer of `capacity` bytes. `write`: the chunk was written
   * with `written` as its callback, and `held` says whether that write is still pending (then the
   * chunk's buffer is not read into again); without `write` the chunk was copied.
   */
  afterRead(n: number, capacity: number, write?: { held: boolean }): void {
    const held = write?.held === true;
    if (n >= capacity) {
      this.#large = true;
      this.#smallRun = 0;
    } else if (this.#large && n <= SMALL_READ / 2) {
      if (++this.#smallRun >= SHRINK_AFTER) {
        this.#large = false;
        this.#smallRun = 0;
      }
    } else {
      this.#smallRun = 0;
    }
    const buf = this.#buf;
    if (write) this.#writes.push(held ? buf : null);
    if (buf === null) return;
    if (held) {
      this.#buf = null;
    } else if (buf.length !== (this.#large ? this.#largeSize : SMALL_READ)) {
      give(buf);
      this.#buf = null;
    }
  }

  /**
   * The chunk just read stays referenced after its read (no `written` callback will give it
   * back): the next read gets another buffer. Call before `afterRead`.
   */
  keep(): void {
    this.#buf = null;
  }

  /** The socket reading into it is closed: nothing can use the buffer any more. */
  release(): void {
    if (this.#buf !== null) give(this.#buf);
    this.#buf = null;
  }
}
