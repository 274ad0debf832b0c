/**
 * 32-bit string hashing for consistent hashing. FNV-1a is fast on short keys (IP addresses,
 * session ids) but mixes its last bytes poorly into the high bits, which decide where a key lands
 * on the ring; the murmur3 finalizer fixes that. Changing either function remaps every client, so
 * the exact values are pinned by tests.
 */

const FNV_OFFSET = 0x811c9dc5;
const FNV_PRIME = 0x01000193;

/** FNV-1a over the string's UTF-16 code units (one byte each for ASCII, two otherwise). */
export function fnv1a32(text: string): number {
  let h = FNV_OFFSET;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c > 0xff) {
      h = Math.imul(h ^ (c >>> 8), FNV_PRIME);
      h = Math.imul(h ^ (c & 0xff), FNV_PRIME);
    } else {
      h = Math.imul(h ^ c, FNV_PRIME);
    }
  }
  return h >>> 0;
}

/** murmur3's fmix32: a bijection on 32-bit integers with full avalanche. */
export function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** Well-mixed unsigned 32-bit hash of a string. Allocates nothing. */
export function hash32(text: string): number {
  return fmix32(fnv1a32(text));
}
