/**
 * Request bodies of the admin API, bounded: at most MAX_BODY bytes, and JSON at most
 * MAX_JSON_DEPTH deep, so that no request can exhaust memory or the stack (the state validation
 * walks bodies recursively). A body found too large is answered 413 at once and the rest of it is
 * read and discarded before the connection closes (see `answerAfterBody`): closing a socket with
 * unread bytes makes the kernel reset it, and a reset can destroy the answer on its way.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { AdminError } from './control.js';

/** The largest body accepted, in bytes. */
export const MAX_BODY = 64 * 1024;
/** The deepest JSON accepted: admin bodies are flat objects, this leaves room to spare. */
export const MAX_JSON_DEPTH = 32;
/** How long the rest of a refused body is read and discarded before the connection closes. */
export const DRAIN_MS = 5000;

/** A body over MAX_BODY bytes: answered 413, then the connection is closed once drained. */
export class BodyTooLarge extends AdminError {
  constructor() {
    super(413, `request body larger than ${MAX_BODY} bytes`);
  }
}

/**
 * The whole body, or a BodyTooLarge rejection as soon as the declared length or the bytes
 * received pass MAX_BODY; from then on the rest is read and discarded.
 */
export function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length']);
    if (declared > MAX_BODY) {
      req.resume();
      reject(new BodyTooLarge());
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    const collect = (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY) {
        chunks.length = 0;
        req.off('data', collect);
        req.resume(); // flowing with no listener: discarded
        reject(new BodyTooLarge());
        return;
      }
      chunks.push(chunk);
    };
    req.on('data', collect);
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

/** The body as JSON; an empty body is `undefined`. A body nested too deep is a 400. */
export async function readJson(req: IncomingMessage): Promise<unknown> {
  const text = (await readBody(req)).toString('utf8');
  if (text.trim() === '') return undefined;
  if (jsonDepth(text) > MAX_JSON_DEPTH) {
    throw new AdminError(400, `expected a JSON body nested at most ${MAX_JSON_DEPTH} deep`);
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new AdminError(400, `expected a JSON body: ${(err as Error).message}`);
  }
}

/**
 * The deepest nesting of objects and arrays in `text`, counted in one pass without recursion;
 * brackets inside strings do not count. Meant for text about to be parsed: for malformed JSON the
 * number is only an upper bound, which is all the check needs.
 */
export function jsonDepth(text: string): number {
  let depth = 0;
  let max = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      // A backslash escapes the next character, a quote ends the string.
      if (c === 0x5c) i++;
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x7b || c === 0x5b) {
      if (++depth > max) max = depth;
    } else if (c === 0x7d || c === 0x5d) depth--;
  }
  return max;
}

/**
 * Sends `text` (a complete response with its Content-Length) at once, but ends the response, and
 * so lets the server close the connection, only once the request's body has been read to its end
 * or after DRAIN_MS. The client has its answer as soon as it reads; the connection closes without
 * a reset however much it still had to send.
 */
export function answerAfterBody(
  req: IncomingMessage,
  res: ServerResponse,
  status: number,
  headers: Record<string, string | number>,
  text: string,
): void {
  res.writeHead(status, { ...headers, connection: 'close' });
  if (req.complete) {
    res.end(text);
    return;
  }
  res.write(text);
  let ended = false;
  const end = () => {
    if (ended) return;
    ended = true;
    clearTimeout(timer);
    res.end();
  };
  const timer = setTimeout(end, DRAIN_MS);
  timer.unref();
  req.resume();
  req.once('end', end);
  req.once('close', end);
  req.once('error', end);
}
