/**
 * The client host of the redundancy test and the lab's redundancy scenario, run as its own process inside the client's namespace:
 * `node vipClient.js USERS PAUSE_MS TIMEOUT_MS`. Each simulated user has a cookie jar and sends
 * `GET /session` one request at a time (a new connection each, as after a move a kept-alive one
 * would only be reset), pausing PAUSE_MS between them, to the targets it was given in turn (one
 * target: the virtual IP; two: active/active, alternating).
 *
 * Commands, one JSON object a line on stdin: `{"targets": ["10.0.0.10"]}` (start or switch),
 * `{"pause": true}` (stop sending; resolves once requests in flight end), `{"reset": true}` (empty
 * every jar: new users), `{"exit": true}`. Each is acknowledged with `{"ack": N}` (N counts the
 * commands). One line a request on stdout: `{"u", "start", "end", "via", "ok", "server", "count",
 * "err"}`, times in ms since the epoch.
 */
import { request } from 'node:http';
import { createInterface } from 'node:readline';
import { CookieJar } from './cookieJar.js';

/** One request's outcome, as printed. */
export interface ClientRecord {
  u: number;
  start: number;
  end: number;
  via: string;
  ok: boolean;
  server?: string;
  count?: number;
  err?: string;
}

interface User {
  id: number;
  jar: CookieJar;
  sent: number;
}

function get(user: User, host: string, timeoutMs: number): Promise<ClientRecord> {
  const start = Date.now();
  return new Promise((resolve) => {
    let settled = false;
    const done = (fields: Partial<ClientRecord>) => {
      if (settled) return;
      settled = true;
      resolve({ u: user.id, start, end: Date.now(), via: host, ok: false, ...fields });
    };
    const cookie = user.jar.header();
    const req = request(
      {
        host,
        port: 80,
        path: '/session',
        headers: { connection: 'close', ...(cookie === '' ? {} : { cookie }) },
        timeout: timeoutMs,
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          body += chunk;
        });
        res.on('error', (err) => done({ err: err.message }));
        res.on('end', () => {
          user.jar.keep(res.headers['set-cookie']);
          if (res.statusCode !== 200) return done({ err: `HTTP ${res.statusCode}` });
          try {
            const answer = JSON.parse(body) as { server: string; count: number };
            done({ ok: true, server: answer.server, count: answer.count });
          } catch {
            done({ err: 'bad body' });
          }
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (err: NodeJS.ErrnoException) => done({ err: err.code ?? err.message }));
    req.end();
  });
}

async function main(): Promise<void> {
  const [users = 10, pauseMs = 100, timeoutMs = 1000] = process.argv.slice(2).map(Number);
  const all: User[] = Array.from({ length: users }, (_, id) => ({ id, jar: new CookieJar(), sent: 0 }));
  let targets: string[] = [];
  let commands = 0;
  let exiting = false;
  const inFlight = new Set<Promise<unknown>>();
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

  const loop = async (user: User) => {
    // Spread the users' starts over one pause.
    await sleep((user.id * pauseMs) / all.length);
    while (!exiting) {
      if (targets.length === 0) {
        await sleep(20);
        continue;
      }
      const host = targets[user.sent % targets.length]!;
      user.sent++;
      const running = get(user, host, timeoutMs);
      inFlight.add(running);
      const record = await running;
      inFlight.delete(running);
      process.stdout.write(`${JSON.stringify(record)}\n`);
      await sleep(pauseMs);
    }
  };
  const loops = all.map(loop);

  for await (const line of createInterface({ input: process.stdin })) {
    if (line.trim() === '') continue;
    const command = JSON.parse(line) as {
      targets?: string[];
      pause?: boolean;
      reset?: boolean;
      exit?: boolean;
    };
    commands++;
    if (command.targets !== undefined) targets = command.targets;
    if (command.pause || command.exit) {
      targets = [];
      await Promise.all(inFlight);
    }
    if (command.reset) for (const u of all) u.jar.clear();
    if (command.exit) exiting = true;
    process.stdout.write(`${JSON.stringify({ ack: commands })}\n`);
    if (exiting) break;
  }
  exiting = true;
  await Promise.all(loops);
}

await main();
