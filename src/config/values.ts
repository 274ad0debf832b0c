/**
 * Parsers for single config values. Each takes what YAML produced (unknown), returns the
 * normalized value and throws ValueError ("expected X, got Y") otherwise. schema.ts wires them
 * to keys; keeping them free of zod keeps their wording in one place and makes them testable.
 */
import { type Address, parseAddress } from './address.js';
import { parseCidr } from './cidr.js';
import { formatDuration, parseDuration } from './duration.js';
import { ValueError } from './errors.js';

export type ValueParser<T> = (input: unknown) => T;

/** setTimeout overflows above 2^31-1 ms (it then fires at once), so timer values stay below. */
export const MAX_TIMER_MS = 24 * 86_400_000;

export function string(input: unknown): string {
  if (typeof input !== 'string') throw new ValueError('a string', input);
  return input;
}

export function nonEmptyString(input: unknown): string {
  if (typeof input !== 'string' || input === '') throw new ValueError('a non-empty string', input);
  return input;
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/** Listener and pool names: they appear in metrics labels and admin URLs. */
export function name(input: unknown): string {
  if (typeof input !== 'string' || !NAME.test(input)) {
    throw new ValueError('a name of letters, digits, ".", "_" and "-" (at most 64)', input);
  }
  return input;
}

/** Server names may look like addresses ("10.0.0.1:80"), so only spaces and controls are out. */
export function serverName(input: unknown): string {
  if (typeof input !== 'string' || !/^[^\s\x00-\x1f\x7f]{1,128}$/.test(input)) {
    throw new ValueError('a name without spaces (at most 128 characters)', input);
  }
  return input;
}

export function integer(min: number, max = Number.MAX_SAFE_INTEGER): ValueParser<number> {
  const expected =
    max !== Number.MAX_SAFE_INTEGER
      ? `an integer from ${min} to ${max}`
      : min === 1
        ? 'a positive integer'
        : min === 0
          ? 'a non-negative integer'
          : `an integer of at least ${min}`;
  return (input) => {
    if (typeof input !== 'number' || !Number.isInteger(input) || input < min || input > max) {
      throw new ValueError(expected, input);
    }
    return input;
  };
}

export function boolean(input: unknown): boolean {
  if (typeof input !== 'boolean') throw new ValueError('true or false', input);
  return input;
}

const SIZE_UNITS: Record<string, number> = { b: 1, kib: 1024, mib: 1024 ** 2, gib: 1024 ** 3 };

/** A size in bytes: a whole number, or a number with B, KiB, MiB or GiB ("10MiB", "8 KiB"). */
export function byteSize(min: number): ValueParser<number> {
  const expected = `a size of at least ${min} bytes, such as 8KiB or 10MiB`;
  return (input) => {
    let bytes = Number.NaN;
    if (typeof input === 'number') bytes = input;
    else if (typeof input === 'string') {
      const m = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(input);
      const unit = m === null ? undefined : SIZE_UNITS[(m[2] || 'b').toLowerCase()];
      if (m !== null && unit !== undefined) bytes = Math.round(Number(m[1]) * unit);
    }
    if (!Number.isSafeInteger(bytes) || bytes < min) throw new ValueError(expected, input);
    return bytes;
  };
}

/** A rate in bytes per second: "1KiB/s", "500B/s" or a number of bytes per second. */
export function byteRate(input: unknown): number {
  const text = typeof input === 'string' ? input.replace(/\/s\s*$/i, '') : input;
  if (typeof input === 'string' && text === input) throw new ValueError('a rate such as 1KiB/s', input);
  try {
    return byteSize(1)(text);
  } catch {
    throw new ValueError('a rate such as 1KiB/s', input);
  }
}

/** A duration in ms; `min` 1 means it must be positive. */
export function duration(min: number, max = MAX_TIMER_MS): ValueParser<number> {
  return (input) => {
    // parseDuration checks the type at run time too: YAML may hand us anything.
    const ms = parseDuration(input as string | number);
    if (ms < min) {
      throw new ValueError(
        min === 1 ? 'a duration above 0' : `a duration of at least ${formatDuration(min)}`,
        input,
      );
    }
    if (ms > max) throw new ValueError(`a duration of at most ${formatDuration(max)}`, input);
    return ms;
  };
}

export function listenAddress(input: unknown): Address {
  return parseAddress(stringFor(input, 'host:port'), { allowPortZero: true });
}

export function serverAddress(input: unknown): Address {
  return parseAddress(stringFor(input, 'host:port'));
}

export function cidr(input: unknown): string {
  return parseCidr(stringFor(input, 'an IP address or CIDR block like "10.0.0.0/8"')).text;
}

/** A string, or ValueError naming what the string should have been. */
function stringFor(input: unknown, expected: string): string {
  if (typeof input !== 'string') throw new ValueError(expected, input);
  return input;
}

const HOST_PATTERN =
  /^(?:\*\.)?(?:[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?\.)*[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$/;

/** Route host: exact name or one leading wildcard label; lower-cased, no port. */
export function hostPattern(input: unknown): string {
  const host = typeof input === 'string' ? input.toLowerCase() : undefined;
  if (host === undefined || host.length > 253 || !HOST_PATTERN.test(host)) {
    throw new ValueError('a host name like "api.example.com" or "*.example.com" (no port)', input);
  }
  return host;
}

/** A path (route prefix, health check path): starts with "/", no spaces, query or fragment. */
export function path(input: unknown): string {
  if (typeof input !== 'string' || !/^\/[^\s?#]*$/.test(input)) {
    throw new ValueError('a path starting with "/"', input);
  }
  return input;
}

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/** An HTTP method, upper-cased: "get" and "GET" are the same method to a user. */
export function method(input: unknown): string {
  if (typeof input !== 'string' || !TOKEN.test(input))
    throw new ValueError('an HTTP method like "GET"', input);
  return input.toUpperCase();
}

export function headerName(input: unknown): string {
  if (typeof input !== 'string' || !TOKEN.test(input)) throw new ValueError('an HTTP header name', input);
  return input.toLowerCase();
}

/** YAML turns `x-canary: 1` into a number; a header value is text, so scalars are taken as text. */
export function headerValue(input: unknown): string {
  if (typeof input === 'number' || typeof input === 'boolean') return String(input);
  if (typeof input !== 'string' || /[\r\n\0]/.test(input)) throw new ValueError('a header value', input);
  return input;
}

/** Health check Host header: a name or IP, optionally with a port. */
export function hostHeader(input: unknown): string {
  if (typeof input !== 'string' || !/^[^\s/?#@]+$/.test(input)) {
    throw new ValueError('a Host header value like "example.com"', input);
  }
  return input;
}

export function cookieName(input: unknown): string {
  if (typeof input !== 'string' || !TOKEN.test(input)) {
    throw new ValueError("a cookie name (letters, digits and !#$%&'*+.^_`|~-)", input);
  }
  return input;
}

/** A secret is never echoed in an error message, only its length. */
export function secret(minLength: number): ValueParser<string> {
  return (input) => {
    if (typeof input !== 'string' || input.length < minLength) {
      const found = typeof input === 'string' ? `${input.length} characters` : `a ${typeof input}`;
      throw new ValueError(`a string of at least ${minLength} characters`, input, { found });
    }
    return input;
  };
}

/** "memory", or "redis://[user:pass@]host[:port][/db]" (rediss:// for TLS). */
export function store(input: unknown): string {
  if (input === 'memory') return input;
  if (typeof input === 'string' && /^rediss?:\/\//.test(input)) {
    const url = URL.canParse(input) ? new URL(input) : undefined;
    if (url && url.hostname !== '' && /^(?:\/\d*)?$/.test(url.pathname) && !url.search && !url.hash) {
      return input;
    }
  }
  throw new ValueError('"memory" or a URL like "redis://127.0.0.1:6379/0"', input);
}

/** 200 → [200, 200]; "200-399" → [200, 399]. */
export function statusRange(input: unknown): [number, number] {
  const text = typeof input === 'number' ? String(input) : typeof input === 'string' ? input.trim() : '';
  const match = /^(\d{3})(?:\s*-\s*(\d{3}))?$/.exec(text);
  if (match) {
    const min = Number(match[1]);
    const max = Number(match[2] ?? match[1]);
    if (min >= 100 && max <= 599 && min <= max) return [min, max];
  }
  throw new ValueError('a status like 200 or a range like "200-399"', input);
}
