/**
 * Request ids for requests that come without an X-Request-Id: random (version 4) UUIDs, as
 * `crypto.randomUUID()` makes them, for a fraction of its garbage. randomUUID builds each id from
 * about twenty short strings (hundreds of bytes of heap per request); here the random bytes come
 * from a batch refilled every 256 ids by `crypto.randomFillSync` and the 36 characters are written
 * into a scratch buffer, read out as one string.
 */
import { randomFillSync } from 'node:crypto';

const BATCH = 256;
const random = Buffer.allocUnsafe(16 * BATCH);
let next = BATCH;
const text = Buffer.alloc(36, 45); // '-' at 8, 13, 18 and 23 stay
/** Where byte i of the UUID goes in its text (two hex digits). */
const AT = [0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34];
const HEX = Buffer.from('0123456789abcdef', 'latin1');

/** A new random UUID (RFC 9562 version 4), lower case. */
export function newRequestId(): string {
  if (next === BATCH) {
    randomFillSync(random);
    next = 0;
  }
  const base = 16 * next++;
  for (let i = 0; i < 16; i++) {
    let b = random[base + i]!;
    // Version 4 in byte 6, variant 10xx in byte 8.
    if (i === 6) b = (b & 0x0f) | 0x40;
    else if (i === 8) b = (b & 0x3f) | 0x80;
    const at = AT[i]!;
    text[at] = HEX[b >> 4]!;
    text[at + 1] = HEX[b & 0x0f]!;
  }
  return text.toString('latin1', 0, 36);
}
