/**
 * The cluster's wire format: length-prefixed frames on a TCP stream.
 *
 *   u32 length (of everything after it) | u8 type | u32 header length | header (JSON) | body
 *
 * The header is a small JSON object (ids, versions, sequence numbers); the body carries a session's
 * serialized text as raw bytes, so replicating a session costs its size plus a few dozen bytes,
 * not a JSON-escaped copy of it. Anything that does not parse closes that peer's connection only.
 */

export const FrameType = {
  hello: 1,
  auth: 2,
  ping: 3,
  pong: 4,
  update: 5,
  touch: 6,
  destroy: 7,
  fetch: 8,
  fetched: 9,
  ack: 10,
  sync: 11,
  synced: 12,
  members: 13,
  leave: 14,
} as const;

export type FrameTypeCode = (typeof FrameType)[keyof typeof FrameType];

const TYPE_NAMES = new Map<number, string>(Object.entries(FrameType).map(([name, code]) => [code, name]));

export function frameTypeName(type: number): string {
  return TYPE_NAMES.get(type) ?? `unknown(${type})`;
}

export type FrameHeader = Record<string, unknown>;

export interface Frame {
  type: FrameTypeCode;
  header: FrameHeader;
  /** Raw body bytes (empty when the frame has none). */
  body: Buffer;
}

/** Default bound on one frame: a session larger than this is refused rather than buffered. */
export const MAX_FRAME_BYTES = 32 * 1024 * 1024;

const PREFIX = 4 + 1 + 4;
const EMPTY = Buffer.alloc(0);

export class FrameError extends Error {
  constructor(message: string) {
    super(`malformed cluster frame: ${message}`);
    this.name = 'FrameError';
  }
}

export function encodeFrame(type: FrameTypeCode, header: FrameHeader, body?: string | Buffer): Buffer {
  const headerText = JSON.stringify(header);
  const headerBytes = Buffer.byteLength(headerText);
  const bodyBytes = body === undefined ? 0 : typeof body === 'string' ? Buffer.byteLength(body) : body.length;
  const frame = Buffer.allocUnsafe(PREFIX + headerBytes + bodyBytes);
  frame.writeUInt32BE(frame.length - 4, 0);
  frame.writeUInt8(type, 4);
  frame.writeUInt32BE(headerBytes, 5);
  frame.write(headerText, PREFIX, 'utf8');
  if (typeof body === 'string') frame.write(body, PREFIX + headerBytes, 'utf8');
  else if (body) body.copy(frame, PREFIX + headerBytes);
  return frame;
}

/**
 * Cuts a byte stream into frames. `push` returns the complete frames so far and throws a
 * FrameError on the first malformed one (the stream cannot be trusted after that).
 */
export class FrameDecoder {
  #pending: Buffer = EMPTY;

  constructor(readonly maxFrameBytes = MAX_FRAME_BYTES) {}

  push(chunk: Buffer): Frame[] {
    this.#pending = this.#pending.length === 0 ? chunk : Buffer.concat([this.#pending, chunk]);
    const frames: Frame[] = [];
    let offset = 0;
    const data = this.#pending;
    while (data.length - offset >= 4) {
      const length = data.readUInt32BE(offset);
      if (length < PREFIX - 4) throw new FrameError(`length ${length} is shorter than a frame's prefix`);
      if (length > this.maxFrameBytes) {
        throw new FrameError(`length ${length} exceeds the ${this.maxFrameBytes}-byte limit`);
      }
      if (data.length - offset - 4 < length) break;
      frames.push(parseFrame(data.subarray(offset + 4, offset + 4 + length)));
      offset += 4 + length;
    }
    this.#pending = offset === data.length ? EMPTY : data.subarray(offset);
    return frames;
  }

  /** Bytes held waiting for the rest of a frame. */
  get buffered(): number {
    return this.#pending.length;
  }
}

function parseFrame(bytes: Buffer): Frame {
  const type = bytes.readUInt8(0);
  if (!TYPE_NAMES.has(type)) throw new FrameError(`unknown type ${type}`);
  const headerBytes = bytes.readUInt32BE(1);
  if (headerBytes > bytes.length - 5) {
    throw new FrameError(`header length ${headerBytes} exceeds the frame (${bytes.length - 5} bytes left)`);
  }
  let header: unknown;
  try {
    header = JSON.parse(bytes.toString('utf8', 5, 5 + headerBytes));
  } catch (err) {
    throw new FrameError(`header is not JSON (${(err as Error).message})`);
  }
  if (header === null || typeof header !== 'object' || Array.isArray(header)) {
    throw new FrameError('header is not a JSON object');
  }
  // Copy the body out: it must not pin the (possibly large) read buffer it came in.
  const body = bytes.length > 5 + headerBytes ? Buffer.from(bytes.subarray(5 + headerBytes)) : EMPTY;
  return { type: type as FrameTypeCode, header: header as FrameHeader, body };
}
