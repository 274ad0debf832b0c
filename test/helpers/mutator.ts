/**
 * A small seeded mutator for fuzz tests: a deterministic random source and mutations of bytes,
 * of HTTP/1.1 messages (line-aware: header names, numbers, separators, framing fields) and of
 * PROXY protocol headers. Every case gets its own random source derived from (seed, part, index),
 * so that one case can be replayed alone.
 */

/** mulberry32: 32-bit state, good enough spread for choosing mutations, fully reproducible. */
export class Rng {
  private state: number;

  constructor(seed: number) {
    this.state = seed >>> 0;
  }

  /** The random source of case `index` of `part` in a run seeded with `seed`. */
  static forCase(seed: number, part: string, index: number): Rng {
    let h = (seed ^ 0x9e3779b9) >>> 0;
    for (const c of `${part}:${index}`) h = Math.imul(h ^ c.charCodeAt(0), 0x01000193) >>> 0;
    return new Rng(h);
  }

  /** A float in [0, 1). */
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** An integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  chance(p: number): boolean {
    return this.next() < p;
  }

  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }
}

/** Bytes that framing code treats specially, and their usual confusions. */
const SPECIAL_BYTES = [
  0x00, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x20, 0x22, 0x2c, 0x2b, 0x2d, 0x30, 0x3a, 0x3b, 0x3d, 0x5c, 0x7f, 0x80,
  0xa0, 0xd7, 0xff, 0x41, 0x61, 0x46, 0x66, 0x39,
];

/** Pieces worth inserting anywhere into an HTTP message. */
const HTTP_SNIPPETS = [
  '\r\n',
  '\n',
  '\r',
  ' ',
  '\t',
  '\xa0',
  ':',
  ';',
  ',',
  '"',
  '\\',
  '0',
  '\r\n\r\n',
  '0\r\n\r\n',
  ';a=b',
  ';a="x"',
  ', chunked',
  'chunked, ',
  ' HTTP/1.1',
  'HTTP/1.0',
  '\r\n ',
  'GET / HTTP/1.1\r\nHost: x\r\n\r\n',
];

/** Whole header lines worth inserting (framing, routing, connection). */
const HTTP_LINES = [
  'Content-Length: 0',
  'Content-Length: 4',
  'Content-Length: 5',
  'Content-Length: 40',
  'Content-Length: 4, 4',
  'Content-Length: +4',
  'Content-Length: 0x4',
  'Content-Length: 04',
  'Content-Length: -1',
  'Content-Length: 99999999999999999999',
  'Transfer-Encoding: chunked',
  'Transfer-Encoding: chunked, identity',
  'Transfer-Encoding: gzip, chunked',
  'Transfer-Encoding: identity',
  'Transfer-Encoding:chunked',
  'Transfer-Encoding : chunked',
  ' Transfer-Encoding: chunked',
  'Transfer-Encoding: "chunked"',
  'Transfer-encoding: xchunked',
  'Host: y',
  'Host: exa}ple test',
  'Host:',
  'Connection: close',
  'Connection: keep-alive',
  'Connection: upgrade',
  'Upgrade: websocket',
  'Connection: content-length',
  'Connection: transfer-encoding',
  'Expect: 100-continue',
  'X-Forwarded-For: 10.0.0.1',
  'Trailer: X-Sum',
  'X: \x00',
  'X\t: y',
  ': empty',
  'Foo',
];

/** Numbers to put in place of a number (a Content-Length or chunk size). */
const NUMBERS = [
  '0',
  '1',
  '3',
  '4',
  '5',
  '00',
  '04',
  'a',
  'A',
  'f',
  'ff',
  '10',
  '-1',
  '+4',
  ' 4',
  '4 ',
  '4 4',
  'fffffffffffffff',
  '1e1',
  '',
];

/** Changes to a framing field's value (Content-Length or Transfer-Encoding), `$` the value. */
const FRAMING_VALUES = [
  '\xa0$',
  '$\xa0',
  ' $',
  '$ ',
  '\t$',
  '$, $',
  '$,$',
  '$ $',
  '+$',
  '0$',
  '$\x00',
  '"$"',
  '$;',
  '',
];
/** What to put after a chunk size. */
const CHUNK_EXTENSIONS = [
  ';a b',
  ';\xd7',
  ';a=b\t',
  ';a="x',
  ';a=',
  ';=x',
  ';',
  ' ;a',
  '; a',
  ';a =b',
  ';a= b',
  ';a',
  ';a=b',
  ';a="x\\"y"',
  ';a="\x01"',
  ';a=b;c',
  '\t',
  ' ',
];
/** Trailer lines to add after a last chunk. */
const TRAILERS = [
  'garbage',
  ': empty',
  'X: a\r\n folded',
  'Content-Length: 4',
  'content-length: 0',
  'Transfer-Encoding: chunked',
  'X-Sum: 1',
  'X:\xa0y',
  'X: y\x00',
  'X : y',
  'GET / HTTP/1.1',
  '\tX: y',
];

/**
 * One change aimed at framing: a framing field's value bent or its line repeated, a chunk
 * extension added, a trailer added. Returns undefined when the message has nothing to aim at.
 */
function mutateFraming(rng: Rng, text: string): string | undefined {
  const headEnd = text.indexOf('\r\n\r\n');
  const framing = [...text.matchAll(/^(content-length|transfer-encoding):[ \t]*([^\r]*)$/gim)];
  const sizes = [...text.matchAll(/\r\n([0-9a-fA-F]+)(?=\r\n)/g)].filter((m) => m.index! > headEnd);
  const lastChunks = sizes.filter((m) => /^0+$/.test(m[1]!));
  const choices: Array<() => string> = [];
  if (framing.length > 0) {
    const m = rng.pick(framing);
    const start = m.index!;
    const end = start + m[0].length;
    choices.push(() => {
      const value = rng.pick(FRAMING_VALUES).replaceAll('$', m[2]!);
      return `${text.slice(0, start)}${m[1]}: ${value}${text.slice(end)}`;
    });
    choices.push(() => `${text.slice(0, end)}\r\n${m[0]}${text.slice(end)}`);
  }
  if (sizes.length > 0) {
    const m = rng.pick(sizes);
    const at = m.index! + m[0].length;
    choices.push(() => text.slice(0, at) + rng.pick(CHUNK_EXTENSIONS) + text.slice(at));
  }
  if (lastChunks.length > 0) {
    const m = rng.pick(lastChunks);
    const at = m.index! + m[0].length + 2;
    choices.push(() => `${text.slice(0, at)}${rng.pick(TRAILERS)}\r\n${text.slice(at)}`);
  }
  return choices.length === 0 ? undefined : rng.pick(choices)();
}

/** One random change to `b` (a copy is returned): flip, insert, delete, duplicate, truncate. */
export function mutateBytes(rng: Rng, b: Buffer): Buffer {
  if (b.length === 0) return Buffer.from([rng.pick(SPECIAL_BYTES)]);
  const at = rng.int(b.length + 1);
  switch (rng.int(6)) {
    case 0: {
      const out = Buffer.from(b);
      out[Math.min(at, b.length - 1)] = rng.chance(0.7) ? rng.pick(SPECIAL_BYTES) : rng.int(256);
      return out;
    }
    case 1:
      return Buffer.concat([b.subarray(0, at), Buffer.from([rng.pick(SPECIAL_BYTES)]), b.subarray(at)]);
    case 2:
      return Buffer.concat([b.subarray(0, at), b.subarray(Math.min(b.length, at + 1 + rng.int(8)))]);
    case 3: {
      const len = 1 + rng.int(16);
      return Buffer.concat([b.subarray(0, at), b.subarray(at, at + len), b.subarray(at)]);
    }
    case 4:
      return b.subarray(0, at);
    default: {
      const out = Buffer.from(b);
      const i = Math.min(at, b.length - 1);
      out[i] = out[i]! ^ (1 << rng.int(8));
      return out;
    }
  }
}

/**
 * One random change to an HTTP message given as latin1 text: some aimed at framing (see
 * mutateFraming), most on lines or tokens (a header line added, dropped, duplicated, its name's
 * case changed; a number replaced; a separator swapped), the rest on bytes.
 */
export function mutateHttp(rng: Rng, text: string): string {
  if (rng.chance(0.3)) {
    const aimed = mutateFraming(rng, text);
    if (aimed !== undefined) return aimed;
  }
  const lines = text.split('\r\n');
  const line = rng.int(lines.length);
  switch (rng.int(10)) {
    case 0: // a header line inserted
      lines.splice(1 + rng.int(Math.max(1, lines.length - 1)), 0, rng.pick(HTTP_LINES));
      return lines.join('\r\n');
    case 1: // a line dropped
      lines.splice(line, 1);
      return lines.join('\r\n');
    case 2: // a line repeated
      lines.splice(line, 0, lines[line]!);
      return lines.join('\r\n');
    case 3: {
      // a number (Content-Length value, chunk size, version digit) replaced
      const numbers = [...text.matchAll(/[0-9a-fA-F]+/g)];
      if (numbers.length === 0) return text;
      const m = rng.pick(numbers);
      return text.slice(0, m.index) + rng.pick(NUMBERS) + text.slice(m.index! + m[0].length);
    }
    case 4: {
      // a snippet inserted anywhere
      const at = rng.int(text.length + 1);
      return text.slice(0, at) + rng.pick(HTTP_SNIPPETS) + text.slice(at);
    }
    case 5: {
      // a separator (CRLF, ":", " ", ";") replaced by a near miss
      const seps = [...text.matchAll(/\r\n|: |:| |;/g)];
      if (seps.length === 0) return text;
      const m = rng.pick(seps);
      const by = rng.pick(['\n', '\r', '\r\r\n', ':', ' :', ': ', '\t', '  ', '\xa0', ';', '', ' ;', '; ']);
      return text.slice(0, m.index) + by + text.slice(m.index! + m[0].length);
    }
    case 6: // case of a line changed
      lines[line] = rng.chance(0.5) ? lines[line]!.toUpperCase() : lines[line]!.toLowerCase();
      return lines.join('\r\n');
    case 7: // whitespace around a header value
      lines[line] =
        lines[line]!.replace(/: ?/, rng.pick([':  ', ':\t', ': \xa0', ':', ': \t '])) +
        rng.pick(['', ' ', '\t', '\xa0']);
      return lines.join('\r\n');
    default:
      return mutateBytes(rng, Buffer.from(text, 'latin1')).toString('latin1');
  }
}

/** One random change to a PROXY header: bytes, or for v1 a field, or for v2 a length or type byte. */
export function mutateProxy(rng: Rng, b: Buffer): Buffer {
  const v1 = b[0] === 0x50;
  if (v1 && rng.chance(0.4)) {
    const text = b.toString('latin1');
    const fields = text.split(' ');
    const i = rng.int(fields.length);
    const pieces = [
      'TCP4',
      'TCP6',
      'UNKNOWN',
      'UDP4',
      '0',
      '65535',
      '65536',
      '01',
      '255.255.255.255',
      '256.1.1.1',
      '1.2.3',
      '::1',
      '::ffff:1.2.3.4',
      'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff',
      '1::2::3',
      'fe80::1%eth0',
      '',
      'x'.repeat(rng.int(120)),
    ];
    if (rng.chance(0.5)) fields[i] = rng.pick(pieces);
    else fields.splice(i, 0, rng.pick(pieces));
    return Buffer.from(fields.join(' '), 'latin1');
  }
  if (!v1 && b.length >= 16 && rng.chance(0.4)) {
    const out = Buffer.from(b);
    switch (rng.int(4)) {
      case 0:
        out[12] = rng.pick([0x20, 0x21, 0x22, 0x2f, 0x11, 0x31]);
        break;
      case 1:
        out[13] = rng.pick([
          0x00, 0x01, 0x02, 0x10, 0x11, 0x12, 0x13, 0x20, 0x21, 0x22, 0x30, 0x31, 0x32, 0x40,
        ]);
        break;
      case 2:
        out.writeUInt16BE(
          rng.pick([0, 1, 11, 12, 13, 36, 35, 216, 4096, 4097, 65535, out.length - 16 + 1]),
          14,
        );
        break;
      default: {
        // a TLV appended, its length right or wrong
        const value = Buffer.alloc(rng.int(8), 0x61);
        const tlv = Buffer.from([rng.int(256), 0, rng.chance(0.7) ? value.length : rng.int(12)]);
        const grown = Buffer.concat([out, tlv, value]);
        grown.writeUInt16BE(grown.length - 16, 14);
        return grown;
      }
    }
    return out;
  }
  return mutateBytes(rng, b);
}
