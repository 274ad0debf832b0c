/**
 * Sessions encrypted at rest: a serializer wrapping another one (JSON by default) that seals its
 * text with AES-256-GCM, so whoever can read the store (a shared memcached, a Redis dump) learns
 * nothing of the sessions and cannot forge or alter one. This is what connect-memcached's `secret`
 * option asks for; MemcachedStore uses it for that option, and any store takes it as `serializer`.
 *
 * Format: `f1.` + base64url(12-byte nonce | 16-byte tag | ciphertext). The key is derived from the
 * secret with scrypt, once. Several secrets rotate: seal with the first, open with any. Text that
 * does not open (another secret, tampered, not sealed) fails to parse, which a store reads as no
 * session (and logs).
 */
import { createCipheriv, createDecipheriv, randomBytes, scryptSync } from 'node:crypto';
import { jsonSerializer, type Serializer, type SessionData } from './store.js';

const VERSION = 'f1.';
const NONCE = 12;
const TAG = 16;
/** A fixed salt: the key must be the same on every server sharing the store. */
const SALT = 'fulcrum/session sealed serializer v1';

/** `secret` (or secrets: the first seals, any opens) around `inner` (default JSON). */
export function sealedSerializer(
  secret: string | readonly string[],
  inner: Serializer = jsonSerializer,
): Serializer {
  const secrets = typeof secret === 'string' ? [secret] : [...secret];
  if (secrets.length === 0 || secrets.some((s) => typeof s !== 'string' || s.length === 0)) {
    throw new TypeError('sealedSerializer needs a non-empty secret (or list of secrets)');
  }
  const keys = secrets.map((s) => scryptSync(s, SALT, 32));
  return {
    stringify(data: SessionData): string {
      const nonce = randomBytes(NONCE);
      const cipher = createCipheriv('aes-256-gcm', keys[0]!, nonce);
      const sealed = Buffer.concat([cipher.update(inner.stringify(data), 'utf8'), cipher.final()]);
      return VERSION + Buffer.concat([nonce, cipher.getAuthTag(), sealed]).toString('base64url');
    },
    parse(text: string): unknown {
      if (!text.startsWith(VERSION)) throw new Error('not sealed with a secret');
      const bytes = Buffer.from(text.slice(VERSION.length), 'base64url');
      if (bytes.length < NONCE + TAG) throw new Error('sealed data too short');
      const nonce = bytes.subarray(0, NONCE);
      const tag = bytes.subarray(NONCE, NONCE + TAG);
      const sealed = bytes.subarray(NONCE + TAG);
      for (const key of keys) {
        try {
          const decipher = createDecipheriv('aes-256-gcm', key, nonce);
          decipher.setAuthTag(tag);
          const plain = Buffer.concat([decipher.update(sealed), decipher.final()]).toString('utf8');
          return inner.parse(plain);
        } catch {
          // another key, or tampered: try the next
        }
      }
      throw new Error('sealed data does not open with the secret (another secret, or altered)');
    },
  };
}
