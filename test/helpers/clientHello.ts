/** TLS ClientHello bytes for tests: a real one from Node's TLS client, and re-framed copies. */
import { Duplex } from 'node:stream';
import { connect as tlsConnect } from 'node:tls';

/** The first flight of Node's TLS client (its ClientHello, in one TLS record). */
export function captureHello(servername: string): Promise<Buffer> {
  return new Promise((resolve) => {
    const wire = new Duplex({
      read() {},
      write(chunk: Buffer, _enc, cb) {
        resolve(chunk);
        cb();
        setImmediate(() => tls.destroy());
      },
    });
    const tls = tlsConnect({ socket: wire, servername, rejectUnauthorized: false });
    tls.on('error', () => {});
  });
}

/** The same handshake bytes re-framed into TLS records of at most `size` bytes each. */
export function reframe(hello: Buffer, size: number): Buffer {
  const handshake = hello.subarray(5, 5 + hello.readUInt16BE(3));
  const out: Buffer[] = [];
  for (let i = 0; i < handshake.length; i += size) {
    const part = handshake.subarray(i, i + size);
    const header = Buffer.from([22, 3, 1, 0, 0]);
    header.writeUInt16BE(part.length, 3);
    out.push(header, part);
  }
  return Buffer.concat(out);
}
