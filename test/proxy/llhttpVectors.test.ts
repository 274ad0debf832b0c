/**
 * llhttp's request test vectors (the parser inside Node.js), run through Fulcrum's own request
 * parsing, verdict against verdict. The corpus is test/fixtures/llhttp-request-vectors.json (see
 * test/fixtures/README.md): each vector is the exact bytes a client sends and llhttp's strict
 * verdict: accept (with where each message ends), reject (with the offset), incomplete (wants
 * more bytes), or upgrade (pauses: the rest is another protocol).
 *
 * Fulcrum's side replays what the proxy does with a client's bytes (clientConnection.ts): skip
 * empty lines, wait for a whole head (findHeadEnd), parseRequestHead, then the body by its
 * framing (Content-Length, or ChunkedDecoder fed whole and byte by byte), then the next
 * pipelined request, unless the request said close (the rest is never read) or upgrade (the
 * rest goes to the tunnel).
 *
 * What llhttp rejects Fulcrum must refuse, what it accepts Fulcrum must accept, message by
 * message, except for the differences listed in KNOWN below, each with the reason RFC 9110/9112
 * allows it. Two differences are general rules rather than entries:
 * - Missing Host: llhttp does not require one, RFC 9112 3.2 says a server MUST answer 400 to an
 *   HTTP/1.1 request without one. Fulcrum does (checked), and the vector is then run again with a
 *   "Host" line added to each such request so the rest of it is still compared.
 * - Rejected while the head is incomplete: llhttp rejects at the first bad byte, Fulcrum parses
 *   a head once it is whole (nothing is forwarded meanwhile; a head that never ends gets 408 or
 *   431). Such a vector must be refused once the head is completed with CRLF CRLF.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { CHUNKED_ERROR, CHUNKED_MORE, ChunkedDecoder } from '../../src/proxy/http/chunkedDecoder.js';
import { Framing, findHeadEnd, newRequestHead, parseRequestHead } from '../../src/proxy/http/headParser.js';

/** The compiled test runs from dist/test/proxy/; the fixture stays in the sources. */
const CORPUS = new URL('../../../test/fixtures/llhttp-request-vectors.json', import.meta.url);

interface LlhttpResult {
  verdict: 'accept' | 'reject' | 'incomplete' | 'upgrade';
  completed: number;
  errorIn: 'head' | 'body' | null;
  error: { offset: number; code: number; reason: string } | null;
  pause: { offset: number; code: number; reason: string } | null;
  messages: Array<{ complete: number | null }>;
}

interface Vector {
  id: string;
  name: string;
  bytes: string;
  skip?: string;
  llhttp: LlhttpResult;
}

/** What Fulcrum does with a client's bytes, message by message. */
interface Outcome {
  /**
   * accept: every byte consumed, each message complete. closed: a message said close, the
   * bytes after it are never read. upgrade: the rest goes to the tunnel (after a 101).
   */
  verdict: 'accept' | 'reject' | 'incomplete' | 'upgrade' | 'closed';
  /** Offsets just past each complete message. */
  ends: number[];
  /** Where it stopped: rejected, waiting, closed or upgraded. */
  where: 'head' | 'body' | null;
  status: number;
  error: string;
  /** Requests that lacked Host and got one added (only with `addHost`). */
  hostAdded: number;
}

const MAX_HEADER_SIZE = 16384; // the listener default

/** Fulcrum's request parsing over `bytes`, as clientConnection.ts drives it. */
function runFulcrum(bytes: Buffer, addHost: boolean, bytewise = false): Outcome {
  const out: Outcome = { verdict: 'accept', ends: [], where: null, status: 0, error: '', hostAdded: 0 };
  const req = newRequestHead();
  const chunked = new ChunkedDecoder();
  let pos = 0;
  for (;;) {
    // RFC 9112 2.2: empty lines before a request line are ignored (as parseHead does).
    while (pos + 1 < bytes.length && bytes[pos] === 13 && bytes[pos + 1] === 10) pos += 2;
    if (pos >= bytes.length) return out;
    const rest = bytes.subarray(pos);
    const end = findHeadEnd(rest, 0);
    if (end < 0 || end > MAX_HEADER_SIZE) {
      if (rest.length > MAX_HEADER_SIZE || end > MAX_HEADER_SIZE) {
        return { ...out, verdict: 'reject', where: 'head', status: 431, error: 'head too large' };
      }
      return { ...out, verdict: 'incomplete', where: 'head' };
    }
    let head = rest.toString('latin1', 0, end);
    let status = parseRequestHead(head, req);
    if (status === 400 && req.error === 'missing Host header' && addHost) {
      const lineEnd = head.indexOf('\r\n');
      head =
        lineEnd < 0
          ? `${head}\r\nHost: llhttp.test`
          : `${head.slice(0, lineEnd)}\r\nHost: llhttp.test${head.slice(lineEnd)}`;
      status = parseRequestHead(head, req);
      out.hostAdded++;
    }
    if (status !== 0) return { ...out, verdict: 'reject', where: 'head', status, error: req.error };
    pos += end + 4;
    if (req.framing === Framing.Length) {
      if (bytes.length - pos < req.contentLength) return { ...out, verdict: 'incomplete', where: 'body' };
      pos += req.contentLength;
    } else if (req.framing === Framing.Chunked) {
      chunked.reset();
      let r = CHUNKED_MORE;
      if (!bytewise) r = chunked.feed(bytes, pos);
      else {
        // One byte per feed: every state must carry over a buffer boundary.
        for (let i = pos; i < bytes.length && r === CHUNKED_MORE; i++) {
          const one = chunked.feed(bytes.subarray(i, i + 1), 0);
          r = one >= 0 ? i + one : one;
        }
      }
      if (r === CHUNKED_ERROR) {
        return { ...out, verdict: 'reject', where: 'body', status: 400, error: chunked.error };
      }
      if (r === CHUNKED_MORE) return { ...out, verdict: 'incomplete', where: 'body' };
      pos = r;
    }
    out.ends.push(pos);
    if (req.upgrade) return { ...out, verdict: 'upgrade', where: 'body' };
    // After a response to a "close" request the connection ends: nothing after is read.
    if (req.close) return { ...out, verdict: pos < bytes.length ? 'closed' : 'accept' };
  }
}

/**
 * Where Fulcrum and llhttp differ on purpose. `fulcrum` is what Fulcrum must do (the test
 * fails when that changes, so this list stays true).
 */
const KNOWN: Record<string, { fulcrum: Partial<Outcome>; reason: string }> = {
  // llhttp answers these with its "Data after `Connection: close`" error; Fulcrum answers the
  // request and closes without reading what follows (RFC 9112 9.6: a server that receives close
  // MUST NOT process further requests on that connection). Nothing more is forwarded either way.
  'request/connection.md:81': { fulcrum: { verdict: 'closed' }, reason: 'data after close is discarded' },
  'request/connection.md:292': { fulcrum: { verdict: 'closed' }, reason: 'data after close is discarded' },
  'request/connection.md:342': { fulcrum: { verdict: 'closed' }, reason: 'data after close is discarded' },

  // CONNECT: a reverse proxy has no tunnel to offer. 501 (RFC 9110 15.6.2: the server does not
  // support the functionality), not 405, which would need an Allow header (RFC 9110 15.5.6).
  'request/method.md:27': { fulcrum: { verdict: 'reject', status: 501 }, reason: 'CONNECT not supported' },
  'request/method.md:62': { fulcrum: { verdict: 'reject', status: 501 }, reason: 'CONNECT not supported' },
  'request/method.md:96': { fulcrum: { verdict: 'reject', status: 501 }, reason: 'CONNECT not supported' },
  'request/uri.md:188': { fulcrum: { verdict: 'reject', status: 501 }, reason: 'CONNECT not supported' },

  // The HTTP/2 connection preface: llhttp pauses so the caller can switch; Fulcrum speaks
  // HTTP/1.x to clients only, and "*" is a target for OPTIONS only (RFC 9112 3.2.4).
  'request/method.md:458': {
    fulcrum: { verdict: 'reject', status: 400 },
    reason: 'no HTTP/2 prior knowledge',
  },
  // Asterisk-form with another method than OPTIONS (RFC 9112 3.2.4), here SSDP's M-SEARCH,
  // a UDP multicast protocol that has no business behind a reverse proxy.
  'request/method.md:135': { fulcrum: { verdict: 'reject', status: 400 }, reason: '"*" only for OPTIONS' },

  // Other protocols than HTTP/1.0 and 1.1 that llhttp also parses (RTSP, Icecast's ICE, and
  // HTTP/0.9's request line without a version): not HTTP/1.x, refused.
  'request/method.md:372': { fulcrum: { verdict: 'reject', status: 400 }, reason: 'ICE/1.0 is not HTTP' },
  'request/method.md:400': { fulcrum: { verdict: 'reject', status: 400 }, reason: 'RTSP/1.0 is not HTTP' },
  'request/method.md:430': { fulcrum: { verdict: 'reject', status: 400 }, reason: 'RTSP/1.0 is not HTTP' },
  'request/sample.md:314': { fulcrum: { verdict: 'reject', status: 400 }, reason: 'HTTP/0.9 not supported' },

  // llhttp knows a fixed list of methods (per protocol); RFC 9110 9.1 makes any token a method,
  // and a proxy forwards methods it does not know. MKCOLA and ANNOUNCE over HTTP are tokens.
  'request/invalid.md:66': { fulcrum: { verdict: 'accept' }, reason: 'extension methods are tokens' },
  'request/invalid.md:356': { fulcrum: { verdict: 'accept' }, reason: 'extension methods are tokens' },

  // An HTAB after the Content-Length digits is OWS, and this llhttp accepts it; the llhttp in
  // Node 20 does not ("Invalid character in Content-Length"). Fulcrum forwards the line as
  // received, so it refuses what a Node server behind would refuse (found by the fuzz test).
  'request/content-length.md:317': {
    fulcrum: { verdict: 'reject', status: 400 },
    reason: "Node 20's llhttp refuses an HTAB after the length",
  },

  // Userinfo in an absolute-form target: RFC 9110 4.2.4 deprecates it and says a recipient
  // SHOULD treat its presence as an error (it is a phishing vector, and never sent to servers).
  'request/uri.md:222': { fulcrum: { verdict: 'reject', status: 400 }, reason: 'userinfo in target' },

  // Transfer codings before the final chunked are legal, but Fulcrum only forwards chunked
  // unchanged: 501 (RFC 9112 6.1: a server SHOULD answer 501 to a coding it does not handle).
  'request/transfer-encoding.md:751': {
    fulcrum: { verdict: 'reject', status: 501 },
    reason: 'deflate, chunked',
  },
  'request/transfer-encoding.md:793': {
    fulcrum: { verdict: 'reject', status: 501 },
    reason: 'deflate, chunked',
  },
};

function load(): Vector[] {
  return (JSON.parse(readFileSync(CORPUS, 'utf8')) as { vectors: Vector[] }).vectors;
}

/** Does Fulcrum's outcome agree with llhttp's verdict? '' when it does, else why not. */
function compare(v: Vector, f: Outcome, bytes: Buffer): string {
  const l = v.llhttp;
  const llEnds = l.messages.filter((m) => m.complete !== null).map((m) => m.complete);
  const sameEnds = () => JSON.stringify(f.ends) === JSON.stringify(llEnds);
  switch (l.verdict) {
    case 'accept':
      if (f.verdict !== 'accept') return `llhttp accepts, Fulcrum ${describe(f)}`;
      return sameEnds() ? '' : `messages end at ${f.ends}, llhttp ${llEnds}`;
    case 'incomplete':
      if (f.verdict !== 'incomplete') return `llhttp wants more bytes, Fulcrum ${describe(f)}`;
      return sameEnds() ? '' : `messages end at ${f.ends}, llhttp ${llEnds}`;
    case 'upgrade':
      if (f.verdict !== 'upgrade') return `llhttp upgrades, Fulcrum ${describe(f)}`;
      return f.ends.at(-1) === l.pause!.offset
        ? ''
        : `upgrade at ${f.ends.at(-1)}, llhttp ${l.pause!.offset}`;
    case 'reject': {
      const llWhy = `llhttp rejects (${l.error!.reason} at ${l.error!.offset})`;
      let g = f;
      if (f.verdict === 'incomplete' && f.where === 'head') {
        // Fulcrum has not seen the whole head yet: it must refuse it once it has.
        g = runFulcrum(Buffer.concat([bytes, Buffer.from('\r\n\r\n')]), true);
        if (g.verdict !== 'reject') return `${llWhy}, Fulcrum waits for the head, then ${describe(g)}`;
      }
      if (g.verdict !== 'reject') return `${llWhy}, Fulcrum ${describe(g)}`;
      if (g.ends.length !== l.completed) {
        return `${llWhy} after ${l.completed} messages, Fulcrum after ${g.ends.length}`;
      }
      return '';
    }
  }
}

function describe(f: Outcome): string {
  const n = `${f.ends.length} message${f.ends.length === 1 ? '' : 's'}`;
  return f.verdict === 'reject' ? `rejects (${f.status} ${f.error}) after ${n}` : `${f.verdict} after ${n}`;
}

test('llhttp request vectors: Fulcrum agrees, or differs as listed', (t) => {
  const vectors = load();
  const problems: string[] = [];
  const figures = { vectors: vectors.length, skipped: 0, run: 0, agree: 0, hostAdded: 0, known: 0 };
  const seenKnown = new Set<string>();
  for (const v of vectors) {
    if (v.skip !== undefined) {
      figures.skipped++;
      continue;
    }
    figures.run++;
    const bytes = Buffer.from(v.bytes, 'base64');
    const f = runFulcrum(bytes, true);
    const label = `${v.id} (${v.name})`;

    // Whole buffer or one byte at a time, the chunked decoder must decide the same.
    const bytewise = runFulcrum(bytes, true, true);
    if (JSON.stringify(bytewise) !== JSON.stringify(f)) {
      problems.push(`${label}: byte-by-byte ${describe(bytewise)}, whole ${describe(f)}`);
    }
    // Without an added Host, a hostless HTTP/1.1 request is refused (RFC 9112 3.2).
    if (f.hostAdded > 0) {
      figures.hostAdded++;
      const plain = runFulcrum(bytes, false);
      if (plain.verdict !== 'reject' || plain.status !== 400 || plain.error !== 'missing Host header') {
        problems.push(`${label}: no Host, yet Fulcrum ${describe(plain)}`);
      }
    }

    const known = KNOWN[v.id];
    if (known !== undefined) {
      seenKnown.add(v.id);
      figures.known++;
      for (const [k, want] of Object.entries(known.fulcrum)) {
        const got = f[k as keyof Outcome];
        if (got !== want)
          problems.push(
            `${label}: known difference (${known.reason}) expects ${k}=${want}, got ${describe(f)}`,
          );
      }
      if (compare(v, f, bytes) === '')
        problems.push(`${label}: listed as a difference but now agrees: unlist it`);
      continue;
    }
    const why = compare(v, f, bytes);
    if (why === '') figures.agree++;
    else problems.push(`${label}: ${why}`);
  }
  for (const id of Object.keys(KNOWN))
    if (!seenKnown.has(id)) problems.push(`${id}: listed but not in the corpus`);
  t.diagnostic(`llhttp vectors: ${JSON.stringify(figures)}`);
  assert.deepEqual(problems, []);
});
