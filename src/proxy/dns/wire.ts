import { type DecodedPacket, decode, encode, TRUNCATED_RESPONSE } from 'dns-packet';
import type { Response } from './answers.js';

/** The most any DNS answer without EDNS0 may take over UDP (RFC 1035). */
export const CLASSIC_UDP_SIZE = 512;
/** The default `maxUdpSize`: the DNS flag day 2020 size, safe from IP fragmentation. */
export const DEFAULT_MAX_UDP_SIZE = 1232;
const HEADER = 12;

/**
 * Decodes a query, or returns undefined for anything this listener will not answer at all (and
 * counts as malformed): shorter than a header, a response (QR set; answering it could start a
 * loop between two servers), more than one question or any answer/authority records, or bytes
 * the decoder rejects. Checked on the header first, so most garbage costs no decode.
 */
export function decodeQuery(msg: Buffer): DecodedPacket | undefined {
  if (msg.length < HEADER || msg.length > 65535) return undefined;
  if ((msg[2]! & 0x80) !== 0) return undefined;
  const qdcount = msg.readUInt16BE(4);
  const ancount = msg.readUInt16BE(6);
  const nscount = msg.readUInt16BE(8);
  const arcount = msg.readUInt16BE(10);
  if (qdcount !== 1 || ancount !== 0 || nscount !== 0 || arcount > 2) return undefined;
  try {
    const packet = decode(msg);
    if (packet.questions?.length !== 1) return undefined;
    const q = packet.questions[0]!;
    if (typeof q.name !== 'string' || typeof q.type !== 'string') return undefined;
    return packet;
  } catch {
    return undefined;
  }
}

/**
 * Encodes a response for UDP within `limit` bytes: without the additional records (other than
 * OPT) when they do not fit, and with TC set and no answers when even those do not fit, so the
 * client asks again over TCP (RFC 2181 §9, RFC 7766).
 */
export function encodeUdp(response: Response, limit: number): { bytes: Buffer; truncated: boolean } {
  const packet = response.packet;
  let bytes = encode(packet);
  if (bytes.length <= limit) return { bytes, truncated: false };
  const opt = packet.additionals?.filter((a) => a.type === 'OPT') ?? [];
  packet.additionals = opt;
  bytes = encode(packet);
  if (bytes.length <= limit) return { bytes, truncated: false };
  packet.answers = [];
  packet.authorities = [];
  packet.flags = (packet.flags ?? 0) | TRUNCATED_RESPONSE;
  return { bytes: encode(packet), truncated: true };
}

/** The UDP size a response to this client may take: what it offered, within our bound. */
export function udpLimit(response: Response, maxUdpSize: number): number {
  return response.ednsSize === 0 ? CLASSIC_UDP_SIZE : Math.min(response.ednsSize, maxUdpSize);
}

/** Encodes a response for TCP: whole, with its two-byte length prefix (RFC 1035 §4.2.2). */
export function encodeTcp(response: Response): Buffer | undefined {
  const body = encode(response.packet);
  if (body.length > 65535) return undefined;
  const framed = Buffer.allocUnsafe(body.length + 2);
  framed.writeUInt16BE(body.length, 0);
  body.copy(framed, 2);
  return framed;
}

/**
 * A minimal reply when a query cannot be decoded but its header can be echoed: used by the
 * rate limiter's "slip" (TC set, nothing else), so a real client behind a flooded subnet retries
 * over TCP, where spoofing is not possible.
 */
export function truncatedReply(msg: Buffer, query: DecodedPacket): Buffer {
  return encode({
    type: 'response',
    id: query.id ?? msg.readUInt16BE(0),
    flags: TRUNCATED_RESPONSE | ((query.flags ?? 0) & 0x0100),
    questions: query.questions ?? [],
  });
}
