/**
 * Benchmark peer: the best-known Node.js reverse proxy setup, Fastify + @fastify/reply-from
 * (undici connection pools, keep-alive to the backends), tuned the way its docs suggest for speed:
 * logger off, request logging off, bodies streamed through untouched.
 *
 * Round robin: every request picks the next backend origin in turn and is forwarded with
 * reply.from(<origin><url>); reply-from's undici Agent keeps one keep-alive pool per origin.
 * Adds X-Forwarded-For / X-Forwarded-Proto like the other proxies in the comparison.
 *
 * Usage: node fastifyProxy.js --port N --upstreams 127.0.0.1:A,127.0.0.1:B [--host 127.0.0.1]
 */
import { parseArgs } from 'node:util';
import replyFrom from '@fastify/reply-from';
import Fastify from 'fastify';

const { values } = parseArgs({
  options: {
    port: { type: 'string' },
    host: { type: 'string', default: '127.0.0.1' },
    upstreams: { type: 'string' },
  },
});

const port = Number(values.port);
const origins = (values.upstreams ?? '')
  .split(',')
  .map((s) => s.trim())
  .filter((s) => s.length > 0)
  .map((s) => (s.startsWith('http') ? s.replace(/\/+$/, '') : `http://${s}`));
if (!Number.isInteger(port) || origins.length === 0) {
  console.error('fastifyProxy: --port N --upstreams host:port[,host:port...] are required');
  process.exit(2);
}

const app = Fastify({ logger: false });

// Stream request bodies straight through instead of buffering/parsing them.
app.removeAllContentTypeParsers();
app.addContentTypeParser('*', (_req, payload, done) => {
  done(null, payload);
});

await app.register(replyFrom, {
  disableRequestLogging: true,
  undici: { connections: 128, pipelining: 1, keepAliveTimeout: 60_000, keepAliveMaxTimeout: 60_000 },
});

let next = 0;
const addForwarded = (
  request: { ip: string },
  headers: Record<string, string | string[] | undefined>,
): Record<string, string | string[] | undefined> => {
  const prior = headers['x-forwarded-for'];
  headers['x-forwarded-for'] = prior ? `${String(prior)}, ${request.ip}` : request.ip;
  headers['x-forwarded-proto'] = 'http';
  return headers;
};

app.all('/*', (request, reply) => {
  const origin = origins[next]!;
  next = (next + 1) % origins.length;
  return reply.from(origin + request.url, { rewriteRequestHeaders: addForwarded });
});

await app.listen({ port, host: values.host ?? '127.0.0.1' });
console.log(`fastify proxy listening on ${values.host}:${port} -> ${origins.join(', ')}`);

const stop = (): void => {
  app.close().then(
    () => process.exit(0),
    () => process.exit(1),
  );
  setTimeout(() => process.exit(0), 2000).unref();
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
