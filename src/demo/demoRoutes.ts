/**
 * The demo lab's admin routes (`/api/demo/...` and the lab report at `/lab/`), handed to the admin
 * endpoint as extra routes: the admin layer serves them without knowing the demo. The dashboard's
 * Lab panel (src/admin/dashboard/lab.js) shows itself only when `GET /api` lists them.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { readJson } from '../admin/body.js';
import { AdminError } from '../admin/control.js';
import { type ExtraRoute, sendJson } from '../admin/server.js';
import type { DemoControl } from './demoControl.js';

/** The routes of `control`, for `startAdmin(..., { extraRoutes })`. */
export function demoRoutes(control: DemoControl): ExtraRoute[] {
  return [
    {
      method: 'GET',
      path: '/api/demo',
      what: 'demo lab: backends, session strategy, simulated users and their lost sessions',
      handler: (_req, res) => sendJson(res, 200, control.view()),
    },
    {
      method: 'POST',
      path: '/api/demo/backends/:id/kill',
      what: "demo lab: close a backend's listener and connections at once, as a crash would",
      handler: async (_req, res, [id]) => sendJson(res, 200, await control.kill(id!)),
    },
    {
      method: 'POST',
      path: '/api/demo/backends/:id/restart',
      what: 'demo lab: start a killed backend again on its port',
      handler: async (_req, res, [id]) => sendJson(res, 200, await control.restart(id!)),
    },
    {
      method: 'POST',
      path: '/api/demo/strategy',
      what: 'demo lab: switch the session strategy: {"strategy": "memory|sticky|cluster|redis"}',
      handler: async (req, res) => {
        const body = await readJson(req);
        const name = (body as { strategy?: unknown } | undefined)?.strategy;
        sendJson(res, 200, await control.switchStrategy(name));
      },
    },
    {
      method: 'POST',
      path: '/api/demo/users',
      what: 'demo lab: start or stop the simulated users: {"running": true|false}; {"reset": true} clears the counts',
      handler: async (req, res) => {
        const body = (await readJson(req)) as { running?: unknown; reset?: unknown } | undefined;
        const running = body?.running;
        if (running !== undefined && typeof running !== 'boolean') {
          const message = `expected true or false, got ${JSON.stringify(running)}`;
          throw new AdminError(400, `running: ${message}`, [{ path: 'running', message }]);
        }
        if (body?.reset === true) control.users.reset();
        if (running === true) control.users.start();
        if (running === false) await control.users.stop();
        sendJson(res, 200, control.view());
      },
    },
    {
      method: 'GET',
      path: '/lab',
      what: "the lab report (fulcrum lab's index.html in ./lab-report), when there is one",
      handler: async (req, res) => {
        const file = join(control.reportDir, 'index.html');
        const body = await readFile(file).catch(() => undefined);
        if (body === undefined) {
          throw new AdminError(404, `no lab report at ${file}: run \`fulcrum lab --quick\` to make one`);
        }
        res.writeHead(200, {
          'content-type': 'text/html; charset=utf-8',
          'content-length': body.length,
          'cache-control': 'no-cache',
          // The report is one page without scripts: it needs none, and gets none.
          'content-security-policy': "default-src 'none'; style-src 'unsafe-inline'; img-src data:",
        });
        res.end(req.method === 'HEAD' ? undefined : body);
      },
    },
  ];
}
