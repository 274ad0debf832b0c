/**
 * Benchmark peer: the floor of any Node.js proxy. Each client connection gets one connection to
 * the next backend (round robin) and the two are piped both ways with `socket.pipe`: no parsing,
 * no routing, no headers, nothing per request. Under keep-alive load (wrk) this is the cost of
 * moving a request and its response through Node's event loop and sockets, which an L4 or L7
 * proxy written in Node pays on top of whatever it does itself.
 *
 * Usage: node nodePipe.js --port N --upstreams 127.0.0.1:A,127.0.0.1:B [--host 127.0.0.1]
 */
import { connect, createServer } from 'node:net';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    port: { type: 'string' },
    host: { type: 'string', default: '127.0.0.1' },
    upstreams: { type: 'string' },
  },
});

const port = Number(values.port);
const upstreams = (values.upstreams ?? '')
  .split(',')
  .filter((s) => s.length > 0)
  .map((s) => {
    const at = s.lastIndexOf(':');
    return { host: s.slice(0, at), port: Number(s.slice(at + 1)) };
  });
if (!Number.isInteger(port) || upstreams.length === 0) {
  console.error('nodePipe: --port N --upstreams HOST:PORT[,HOST:PORT...] are required');
  process.exit(2);
}

let next = 0;
const server = createServer({ noDelay: true }, (client) => {
  const target = upstreams[next++ % upstreams.length]!;
  const upstream = connect({ ...target, noDelay: true });
  client.on('error', () => upstream.destroy());
  upstream.on('error', () => client.destroy());
  client.pipe(upstream).pipe(client);
});
server.listen(port, values.host, () => console.log(`node pipe on ${port}`));
process.on('SIGTERM', () => process.exit(0));
