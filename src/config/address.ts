/**
 * Network addresses as written in the config: `host:port`, `[::1]:8080`, `localhost:3001`.
 * IPv6 hosts need brackets, because `::1:8080` is ambiguous. Port 0 ("any free port", handy in
 * tests) is accepted only where the caller allows it, i.e. for addresses Fulcrum listens on.
 */
import { isIP, isIPv4, isIPv6 } from 'node:net';
import { ValueError } from './errors.js';

export interface Address {
  /** IP or host name, lower-cased; IPv6 without brackets (as node:net wants it). */
  host: string;
  port: number;
  /** Canonical text, `host:port` or `[v6]:port`; a server's default name and identity. */
  text: string;
}

export interface AddressOptions {
  /** Accept port 0 (the OS picks a free port): listen addresses only. */
  allowPortZero?: boolean;
}

const EXPECTED = 'host:port';
const HOST_LABEL = /^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$/;

export function parseAddress(text: string, options: AddressOptions = {}): Address {
  if (typeof text !== 'string') throw new ValueError(EXPECTED, text);
  let host: string;
  let portText: string;
  if (text.startsWith('[')) {
    const close = text.indexOf(']');
    if (close < 0 || text[close + 1] !== ':') throw new ValueError('[ipv6]:port', text);
    host = text.slice(1, close);
    portText = text.slice(close + 2);
    if (!isIPv6(host)) throw new ValueError('[ipv6]:port with a valid IPv6 address', text);
  } else {
    const colon = text.lastIndexOf(':');
    if (colon < 0) throw new ValueError(EXPECTED, text);
    host = text.slice(0, colon);
    portText = text.slice(colon + 1);
    if (host.includes(':')) {
      throw new ValueError(EXPECTED, text, { hint: 'put an IPv6 address in brackets, like "[::1]:8080"' });
    }
    if (host === '') throw new ValueError(EXPECTED, text, { hint: 'use 0.0.0.0 to mean every interface' });
    if (!isHost(host)) throw new ValueError(`${EXPECTED} with a valid host name or IP address`, text);
  }
  const port = parsePort(portText);
  const min = options.allowPortZero ? 0 : 1;
  if (port === undefined || port < min) {
    throw new ValueError(`${EXPECTED} with a port from ${min} to 65535`, text);
  }
  host = host.toLowerCase();
  return { host, port, text: formatAddress({ host, port }) };
}

/** Whether a host is this machine only: 127.0.0.0/8, ::1 (also as ::ffff:127.x) or localhost. */
export function isLoopback(host: string): boolean {
  const h = host.toLowerCase();
  if (h === 'localhost' || h === '::1' || h === '0:0:0:0:0:0:0:1') return true;
  if (h.startsWith('::ffff:')) return isLoopback(h.slice(7));
  return isIP(h) === 4 && h.startsWith('127.');
}

export function formatAddress(address: { host: string; port: number }): string {
  return address.host.includes(':') ? `[${address.host}]:${address.port}` : `${address.host}:${address.port}`;
}

function parsePort(text: string): number | undefined {
  if (!/^\d{1,5}$/.test(text)) return undefined;
  const port = Number(text);
  return port <= 65535 ? port : undefined;
}

/** IPv4, or an RFC 1123 host name (underscores allowed: container service names use them). */
function isHost(host: string): boolean {
  // All digits and dots: it can only be meant as IPv4, so "999.1.1.1" must not pass as a name.
  if (/^[\d.]+$/.test(host)) return isIPv4(host);
  if (host.length > 253) return false;
  return host
    .toLowerCase()
    .replace(/\.$/, '')
    .split('.')
    .every((label) => HOST_LABEL.test(label));
}
