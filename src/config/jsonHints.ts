/**
 * What each value parser accepts, as JSON Schema, for the schema editors read (`fulcrum schema`):
 * the parsers check by code (durations, addresses, ...), which zod's `toJSONSchema` cannot see.
 * The factories here wrap those of values.ts and remember their bounds.
 */
import { serverNameValue } from './serverTls.js';
import * as v from './values.js';

/** A JSON Schema fragment. */
export type JsonHint = Record<string, unknown>;

const hints = new WeakMap<v.ValueParser<unknown>, JsonHint>();
const text = (description: string): JsonHint => ({ type: 'string', description });

for (const [parse, hint] of [
  [v.string, { type: 'string' }],
  [v.nonEmptyString, { type: 'string', minLength: 1 }],
  [v.name, { type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$' }],
  [v.serverName, text('a name without spaces (at most 128 characters)')],
  [v.boolean, { type: 'boolean' }],
  [v.listenAddress, text('host:port to listen on, e.g. "127.0.0.1:8080" (port 0: any free port)')],
  [v.serverAddress, text('host:port of the server, e.g. "10.0.0.5:3000"')],
  [v.cidr, text('an IP address or CIDR block like "10.0.0.0/8"')],
  [v.hostPattern, text('a host name like "api.example.com" or "*.example.com" (no port)')],
  [v.path, { type: 'string', pattern: '^/' }],
  [v.method, text('an HTTP method like "GET"')],
  [v.headerValue, { type: ['string', 'number', 'boolean'] }],
  [v.hostHeader, text('a Host header value like "example.com"')],
  [v.cookieName, text('a cookie name')],
  [v.store, text('"memory" or a URL like "redis://127.0.0.1:6379/0"')],
  [serverNameValue, text('a DNS name like "app.internal" (no wildcard, port or IP address)')],
  [v.redisUrl, text('a Redis URL like "redis://127.0.0.1:6379/0"')],
  [v.dnsZoneName, text('a domain name like "example.test"')],
  [v.dnsRecordName, text('a name in the zone like "www", "_http._tcp.www" or "@"')],
  [v.byteRate, { type: ['string', 'number'], description: 'a rate such as "1KiB/s", or bytes per second' }],
  [
    v.statusRange,
    { type: ['integer', 'string'], description: 'a status like 200 or a range like "200-399"' },
  ],
] as const) {
  hints.set(parse as v.ValueParser<unknown>, hint);
}

/** The JSON Schema of what `parse` accepts ({} when unknown: anything). */
export function hintOf(parse: v.ValueParser<unknown>): JsonHint {
  return hints.get(parse) ?? {};
}

/** Remembers the JSON Schema of what `parse` accepts, and returns it. */
export function hinted<T>(parse: v.ValueParser<T>, hint: JsonHint): v.ValueParser<T> {
  hints.set(parse as v.ValueParser<unknown>, hint);
  return parse;
}

/** v.integer, remembering its bounds. */
export function integer(min: number, max = Number.MAX_SAFE_INTEGER): v.ValueParser<number> {
  return hinted(v.integer(min, max), {
    type: 'integer',
    minimum: min,
    ...(max === Number.MAX_SAFE_INTEGER ? {} : { maximum: max }),
  });
}

/** v.duration: a string like "5s" or a number of milliseconds. */
export function duration(min: number, max = v.MAX_TIMER_MS): v.ValueParser<number> {
  return hinted(v.duration(min, max), {
    type: ['string', 'number'],
    description: 'a duration like "250ms", "5s", "1m", "1h30m", or a number of milliseconds',
  });
}

/** v.byteSize: a number of bytes or a size like "10MiB". */
export function byteSize(min: number): v.ValueParser<number> {
  return hinted(v.byteSize(min), {
    type: ['string', 'number'],
    description: `a size of at least ${min} bytes: a number, or with B, KiB, MiB, GiB ("8KiB", "10MiB")`,
  });
}

/** v.secret, remembering its least length. */
export function secret(minLength: number): v.ValueParser<string> {
  return hinted(v.secret(minLength), { type: 'string', minLength });
}
