/**
 * An HTTP/2 request's header block as the RequestHead the forwarding path knows: the pseudo
 * headers become the request line and Host, the regular fields follow as header lines, and
 * the whole is checked by the same strict parser as an HTTP/1.1 head. One representation for
 * every front: the header rules forward the head's raw lines whatever front built it.
 */
import { Framing, headerIndex, parseRequestHead, type RequestHead } from '../http/headParser.js';

/**
 * Fills `head` from `raw` (name, value, name, value …; names lowercase as HTTP/2 requires).
 * `hasBody`: DATA frames follow the headers. Returns 0, or the status to answer (400, 431, 501).
 */
export function h2RequestHead(
  raw: readonly string[],
  hasBody: boolean,
  head: RequestHead,
  maxHeaderSize: number,
  maxHeaders: number,
): number {
  let method = '';
  let path = '';
  let authority = '';
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    if (name.charCodeAt(0) !== 58 /* : */) continue;
    if (name === ':method') method = raw[i + 1]!;
    else if (name === ':path') path = raw[i + 1]!;
    else if (name === ':authority') authority = raw[i + 1]!;
  }
  let text = `${method} ${path} HTTP/1.1\r\n`;
  // RFC 9113 8.3.1: :authority, when present, stands for Host (a Host field is then dropped).
  if (authority !== '') text += `host: ${authority}\r\n`;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    if (name.charCodeAt(0) === 58 || (authority !== '' && name === 'host')) continue;
    text += `${name}: ${raw[i + 1]}\r\n`;
  }
  if (text.length > maxHeaderSize) {
    head.error = 'request head larger than maxHeaderSize';
    return 431;
  }
  const status = parseRequestHead(text.slice(0, -2), head, maxHeaders);
  if (status !== 0) return status;
  // HTTP/2 has no connection-specific fields: a client that sent some is out of spec.
  head.close = false;
  head.upgrade = false;
  head.h2 = true;
  if (!hasBody) {
    head.framing = Framing.None;
    head.contentLength = 0;
  } else if (head.framing === Framing.None && headerIndex(head, 'content-length') < 0) {
    // A body of unknown length: the server gets it chunked (the front frames each DATA frame).
    head.framing = Framing.Chunked;
    head.contentLength = -1;
  }
  return 0;
}
