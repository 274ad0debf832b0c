#!/usr/bin/env node
import { Command, InvalidArgumentError, Option } from 'commander';
// Light modules only at the top: the proxy (runtime) and the config schema load when a command
// needs them, so that `fulcrum health`, run every second by keepalived, starts quickly.
import { formatAddress } from '../config/address.js';
import { configOrDefault, DEFAULT_CONFIG } from '../config/defaultFile.js';
import { parseDuration } from '../config/duration.js';
import { ConfigError } from '../config/errors.js';
import { LOG_FORMATS, LOG_LEVELS, type LogFormat, type LogLevel, log } from '../core/log.js';
import { VERSION } from '../core/version.js';
import { describeReload } from '../runtime/describeReload.js';
import type { ReloadSummary, Runtime } from '../runtime/runtime.js';

/** Exit status for a bad config (`check` and `start`), as the contract says. */
const EXIT_CONFIG = 2;

const program = new Command();
program
  .name('fulcrum')
  .description('An L4/L7 load balancer: spreads HTTP requests over a pool of servers.')
  .version(VERSION)
  // Every command's help lists the options that apply to it all (--log-level, --log-format).
  .configureHelp({ showGlobalOptions: true })
  .addOption(
    new Option('--log-level <level>', 'process log level (debug says the most)')
      .choices(LOG_LEVELS)
      .env('FULCRUM_LOG_LEVEL')
      .default('info'),
  )
  .addOption(
    new Option('--log-format <format>', 'process log lines: text, or one JSON object a line')
      .choices(LOG_FORMATS)
      .env('FULCRUM_LOG_FORMAT')
      .default('text'),
  )
  .hook('preAction', (cmd) => {
    const opts = cmd.opts<{ logLevel: LogLevel; logFormat: LogFormat }>();
    log.level = opts.logLevel;
    log.format = opts.logFormat;
  })
  .showHelpAfterError();

program
  .command('start')
  .description(
    'Run the balancer in the foreground. SIGHUP reloads the file in place; SIGTERM/SIGINT finish requests in flight, then exit.',
  )
  .option('-c, --config <file>', `YAML config file (default: ./${DEFAULT_CONFIG} when present)`)
  .addHelpText('after', '\nExample:\n  fulcrum start -c fulcrum.yaml')
  .action(async (given: { config?: string }) => {
    const opts = { config: requireConfig(given.config) };
    // Signals are taken from the first moment: one that arrives while the balancer is still
    // starting (its port may already accept) is acted on once it has started, never fatal.
    let running: Running | undefined;
    let stopping = false;
    let stopPending: string | undefined;
    let reloadPending = false;
    const stop = async (signal: string) => {
      if (!running) {
        stopPending ??= signal; // acted on when start completes
        return;
      }
      if (stopping) return;
      stopping = true;
      log.info(
        `${signal}: finishing requests in flight (up to ${running.runtime.config.shutdownTimeout} ms)`,
      );
      await running.stop();
      log.info('stopped');
      process.exit(0);
    };
    const reload = () => {
      if (stopping || stopPending) return;
      if (!running) {
        reloadPending = true;
        return;
      }
      log.info(`SIGHUP: reloading ${opts.config}`);
      running.reload().then(
        (summary) => log.info(`reloaded ${opts.config}: ${describeReload(summary)}`),
        (err: Error) => log.error(`reload rejected, the running config stays:\n${err.message}`),
      );
    };
    process.on('SIGTERM', () => void stop('SIGTERM'));
    process.on('SIGINT', () => void stop('SIGINT'));
    process.on('SIGHUP', reload);
    log.debug(`fulcrum ${VERSION} starting (pid ${process.pid}) with ${opts.config}`);
    running = await loadAndStart(opts.config);
    if (stopPending) await stop(stopPending);
    else if (reloadPending) reload();
  });

program
  .command('check')
  .description('Validate a config file: exit 0 when valid, 2 with every problem listed when not.')
  .option('-c, --config <file>', `YAML config file (default: ./${DEFAULT_CONFIG} when present)`)
  .action(async (given: { config?: string }) => {
    const opts = { config: requireConfig(given.config) };
    try {
      // What start loads: the file with its state file on top, so check refuses what start would.
      const { loadWithState } = await import('../admin/state.js');
      const { config } = await loadWithState(opts.config, log);
      const servers = config.pools.reduce((n, p) => n + p.servers.length, 0);
      process.stdout.write(
        `${opts.config}: OK (${config.listeners.length} listener(s), ${config.pools.length} pool(s), ${servers} server(s))\n`,
      );
    } catch (err) {
      exitWithConfigError(err);
    }
  });

program
  .command('backend')
  .description('Run the sample backend: x-served-by header, /health, /whoami, /session, /cluster, JSON echo.')
  .requiredOption('-p, --port <port>', 'port to listen on (0: any free port)', port)
  .option('--host <host>', 'address to listen on', '127.0.0.1')
  .option('--id <name>', 'name reported in x-served-by and /whoami (default host:port)')
  .option('--delay <duration>', 'delay before each answer, e.g. 50ms', duration, 0)
  .option('--cpu <duration>', 'CPU time spent on each answer (busy work), e.g. 5ms', duration, 0)
  .option(
    '--session-store <store>',
    'memory | redis://H:P | memcached://H:P | cluster (sessions replicated between the backends: --cluster-*)',
    'memory',
  )
  .option('--cluster-mode <mode>', 'cluster store: all-to-all | primary-backup (default all-to-all)')
  .option(
    '--cluster-listen <host:port>',
    'cluster store: address this node listens on for its peers (its id)',
  )
  .option('--peers <list>', 'cluster store: other nodes, HOST:PORT,HOST:PORT,... (a joining node needs one)')
  .option(
    '--cluster-secret <secret>',
    'cluster store: secret shared by all nodes (default $FULCRUM_CLUSTER_SECRET)',
  )
  .option('--cluster-sync', 'cluster store: a write waits for its replicas to acknowledge it')
  .addHelpText(
    'after',
    `
Example, a three-node session cluster (each backend holds and replicates the sessions):
  FULCRUM_CLUSTER_SECRET=s3cret fulcrum backend --port 3001 --session-store cluster \\
    --cluster-listen 127.0.0.1:7001 --peers 127.0.0.1:7002,127.0.0.1:7003
  (and likewise on ports 3002/7002 and 3003/7003)`,
  )
  .action(async (opts: BackendCliOptions) => {
    // Loaded on demand: the backend pulls in the session stores, which the balancer never needs.
    const [{ startBackend }, { splitAddress }] = await Promise.all([
      import('../demo/backend.js'),
      import('../session/cluster/membership.js'),
    ]);
    const cluster = backendCluster(opts, splitAddress);
    const starting = startBackend({
      port: opts.port,
      host: opts.host,
      delayMs: opts.delay,
      cpuMs: opts.cpu,
      sessionStore: opts.sessionStore,
      ...(opts.id === undefined ? {} : { id: opts.id }),
      ...(cluster === undefined ? {} : { cluster: { ...cluster, logger: log } }),
    });
    // A backend that cannot start (its port or cluster port taken, ...) says why in one line and
    // exits 2, as `fulcrum start` does.
    const b = await starting.catch((err: Error) => {
      process.stderr.write(`fulcrum backend: ${err.message}\n`);
      process.exit(EXIT_CONFIG);
    });
    log.info(
      `backend ${b.id} listening on http://${formatAddress(b)}${
        cluster === undefined ? '' : ` (session cluster ${cluster.mode}, node ${cluster.listen})`
      }`,
    );
    const stop = () => void b.close().then(() => process.exit(0));
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
  });

interface BackendCliOptions {
  port: number;
  host: string;
  id?: string;
  delay: number;
  cpu: number;
  sessionStore: string;
  clusterMode?: string;
  clusterListen?: string;
  peers?: string;
  clusterSecret?: string;
  clusterSync?: boolean;
}

/**
 * The cluster options of `fulcrum backend --session-store cluster`, checked: a missing or bad one
 * is named on stderr and exits 2; `--cluster-*` flags without `--session-store cluster` too.
 */
function backendCluster(opts: BackendCliOptions, splitAddress: (address: string) => unknown) {
  const fail = (message: string): never => {
    process.stderr.write(`fulcrum backend: ${message}\n`);
    process.exit(EXIT_CONFIG);
  };
  // The store's own parser: what it would refuse is refused here, with the flag named.
  const badAddress = (text: string) => {
    try {
      splitAddress(text);
      return false;
    } catch {
      return true;
    }
  };
  if (opts.sessionStore.trim() !== 'cluster') {
    const given = (
      [
        ['--cluster-mode', opts.clusterMode],
        ['--cluster-listen', opts.clusterListen],
        ['--peers', opts.peers],
        ['--cluster-secret', opts.clusterSecret],
        ['--cluster-sync', opts.clusterSync],
      ] as const
    ).filter(([, value]) => value !== undefined);
    if (given.length > 0) {
      const flags = given.map(([flag]) => flag);
      const list = flags.length === 1 ? flags[0] : `${flags.slice(0, -1).join(', ')} and ${flags.at(-1)}`;
      fail(`${list} ${flags.length === 1 ? 'needs' : 'need'} --session-store cluster`);
    }
    return undefined;
  }
  const mode = opts.clusterMode ?? 'all-to-all';
  if (mode !== 'all-to-all' && mode !== 'primary-backup') {
    fail(`--cluster-mode: expected all-to-all or primary-backup, got "${mode}"`);
  }
  const listen = opts.clusterListen?.trim();
  if (listen === undefined || listen === '') {
    fail('--session-store cluster needs --cluster-listen HOST:PORT (the address peers dial)');
  } else if (badAddress(listen)) {
    fail(`--cluster-listen: expected HOST:PORT, got "${listen}"`);
  }
  const peers = (opts.peers ?? '')
    .split(',')
    .map((p) => p.trim())
    .filter((p) => p !== '');
  const badPeer = peers.find(badAddress);
  if (badPeer !== undefined) fail(`--peers: expected HOST:PORT[,HOST:PORT...], got "${badPeer}"`);
  const secret = opts.clusterSecret ?? process.env.FULCRUM_CLUSTER_SECRET ?? '';
  if (secret === '') {
    fail('--session-store cluster needs --cluster-secret (or FULCRUM_CLUSTER_SECRET in the environment)');
  }
  return {
    mode: mode as 'all-to-all' | 'primary-backup',
    listen: listen as string,
    peers,
    secret,
    sync: opts.clusterSync === true,
  };
}

program
  .command('demo')
  .description('Start the demo lab: 3 sample backends on loopback behind the balancer.')
  .option('-p, --port <port>', 'balancer port', port, 8080)
  .option('--host <host>', 'loopback address to use', '127.0.0.1')
  .action(async (opts: { port: number; host: string }) => {
    const { startLab } = await import('../demo/lab.js');
    const lab = await startLab({ port: opts.port, host: opts.host, backends: 3 }).catch((err: Error) => {
      process.stderr.write(
        `fulcrum ${err.message}\n  (choose another port: fulcrum demo --port ${opts.port === 0 ? 8080 : opts.port + 1})\n`,
      );
      process.exit(EXIT_CONFIG);
    });
    const lines = [
      '',
      'Fulcrum demo lab',
      `  balancer (round robin)  ${lab.url}`,
      ...lab.backends.map((b) => `  backend ${b.id.padEnd(15)} http://${formatAddress(b)}`),
      `  dashboard               ${lab.adminUrl}/   (live charts; drain a server with a click)`,
      '',
      "The dashboard's Lab panel: kill and restart a backend, switch the session strategy",
      `  (memory, sticky cookie, clustered${lab.control.redisUnavailable() === undefined ? ', Redis' : ''}) and watch simulated users lose sessions, live.`,
      lab.control.view().report.available
        ? `  lab report              ${lab.adminUrl}/lab/`
        : '  lab report              none yet in ./lab-report: make one with `fulcrum lab --quick`',
      '',
      'Try:',
      `  curl -s ${lab.url}/whoami        # run it a few times: backend-a, -b, -c, -a, ...`,
      `  curl -s -c /tmp/fulcrum.jar -b /tmp/fulcrum.jar ${lab.url}/session   # one counter across all backends`,
      `  curl -s http://${formatAddress(lab.backends[0]!)}/cluster   # how backend-a replicates sessions`,
      `  curl -s ${lab.url}/anything      # a JSON echo with the X-Forwarded-* headers added`,
      `  curl -s ${lab.adminUrl}/metrics  # Prometheus metrics`,
      '',
      'Ctrl-C stops the lab.',
      '',
    ];
    process.stdout.write(lines.join('\n'));
    // The redis-server the Lab panel may start never outlives the demo.
    process.once('exit', () => lab.control.killNow());
    const stop = () => void lab.stop().then(() => process.exit(0));
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
  });

program
  .command('lab')
  .description(
    'Run the load-balancing lab: real backends, balancers, redis-server and memcached on loopback; writes a report with charts.',
  )
  .option('--quick', 'fewer and shorter repetitions (about two minutes)')
  .option('--only <names>', 'run only these scenarios, NAME,NAME,... (see below)')
  .option('--out <dir>', 'where index.html, report.md and results.json go', 'lab-report')
  .option('--keep-work', "copy the processes' logs and configs to DIR/work")
  .addHelpText(
    'after',
    '\nScenarios: algorithms, ip-hash, failover, sessions, session-cluster, store-restart, hot-spot, scale-out,\n  l4-l7, dns, protection, redundancy (root, keepalived, redis-server).\nExample:\n  fulcrum lab --quick --out lab-report && xdg-open lab-report/index.html\nExit status: 0 when every check holds, 1 when one does not or a scenario failed.',
  )
  .action(async (opts: { quick?: boolean; only?: string; out: string; keepWork?: boolean }) => {
    const { runLab, unknownScenarios, scenarioNames } = await import('../lab/runner.js');
    const only = (opts.only ?? '')
      .split(',')
      .map((n) => n.trim())
      .filter((n) => n !== '');
    const unknown = unknownScenarios(only);
    if (unknown.length > 0) {
      process.stderr.write(
        `fulcrum lab: --only: unknown scenario ${unknown.join(', ')}; expected some of ${scenarioNames().join(', ')}\n`,
      );
      process.exit(EXIT_CONFIG);
    }
    const report = await runLab({
      quick: opts.quick === true,
      only,
      out: opts.out,
      keepWork: opts.keepWork === true,
    });
    const failed = report.results.filter((r) => r.status === 'failed').length;
    const bad = report.results.flatMap((r) => (r.checks ?? []).filter((c) => !c.ok)).length;
    process.stderr.write(
      `lab: report in ${opts.out}/index.html and ${opts.out}/report.md (${report.seconds.toFixed(0)} s; ${bad} check(s) not holding, ${failed} scenario(s) failed)\n`,
    );
    process.exitCode = failed > 0 || bad > 0 ? 1 : 0;
  });

program
  .command('schema')
  .description("Print the config file's JSON Schema (for editors: completion and checking of fulcrum.yaml).")
  .addHelpText(
    'after',
    '\nExample:\n  fulcrum schema > fulcrum.schema.json\n  # then, as the first line of fulcrum.yaml:\n  # yaml-language-server: $schema=fulcrum.schema.json',
  )
  .action(async () => {
    const { configJsonSchemaText } = await import('../config/jsonSchema.js');
    process.stdout.write(configJsonSchemaText());
  });

// ---------------------------------------------------------------------------------------------
// Admin API client: `fulcrum status`, `fulcrum server add|drain|ready|maintenance|weight|remove`.
// The requests, output and exit codes (0 ok, 2 bad input, 1 other failures) live in
// src/admin/client.ts; this block only declares the commands.

function adminTarget(cmd: Command): Command {
  return cmd
    .option(
      '--admin <url>',
      'admin API URL (default: $FULCRUM_ADMIN, admin.listen of the config file, http://127.0.0.1:9000)',
    )
    .option(
      '--token <token>',
      'admin bearer token (default: $FULCRUM_ADMIN_TOKEN, or admin.token of -c FILE)',
    )
    .option(
      '-c, --config <file>',
      `take the admin address and token from this config file (default: ./${DEFAULT_CONFIG} when present)`,
    )
    .option('--json', 'print the API answer as JSON');
}

async function adminClient() {
  return import('../admin/client.js');
}

adminTarget(
  program
    .command('status')
    .description(
      'Show listeners, pools and servers of a running balancer: state, weight, traffic, latency, health.',
    ),
).action(async (opts) => {
  process.exitCode = await (await adminClient()).status(opts);
});

const serverCmd = program
  .command('server')
  .description('Change the servers of a running balancer through its admin API (changes survive reloads).');
adminTarget(serverCmd.command('add <pool> <address>').description('Add a server to a pool.'))
  .option('--name <name>', 'server name (default: the address)')
  .option('--weight <weight>', 'weight 0..256 (default 1)')
  .option('--backup', 'a backup server')
  .action(async (pool: string, address: string, opts) => {
    const args = { pool, address, name: opts.name, weight: opts.weight, backup: opts.backup === true };
    process.exitCode = await (await adminClient()).server('add', args, opts);
  });
for (const [action, what] of [
  ['drain', 'Stop sending new requests to a server; requests in flight finish.'],
  ['ready', 'Put a drained (or maintenance) server back into rotation.'],
  ['maintenance', 'Take a server out of rotation for maintenance.'],
] as const) {
  adminTarget(serverCmd.command(`${action} <pool> <server>`).description(what)).action(
    async (pool: string, server: string, opts) => {
      process.exitCode = await (await adminClient()).server(action, { pool, server }, opts);
    },
  );
}
adminTarget(
  serverCmd.command('weight <pool> <server> <weight>').description("Set a server's weight (0..256)."),
).action(async (pool: string, server: string, weight: string, opts) => {
  process.exitCode = await (await adminClient()).server('weight', { pool, server, weight }, opts);
});
adminTarget(
  serverCmd
    .command('remove <pool> <server>')
    .description('Drain a server, then remove it from its pool once its requests in flight are done.'),
)
  .option('--no-wait', 'return once draining has begun')
  .option('--timeout <duration>', 'remove anyway after this long (default 30s)')
  .action(async (pool: string, server: string, opts) => {
    const args = { pool, server, wait: opts.wait !== false, timeout: opts.timeout };
    process.exitCode = await (await adminClient()).server('remove', args, opts);
  });

adminTarget(
  program
    .command('reload')
    .description('Reload the config file of a running balancer (same as SIGHUP), through its admin API.'),
).action(async (opts) => {
  process.exitCode = await (await adminClient()).reload(opts);
});

// `fulcrum protection`: blocked clients, top talkers, refusals and surges; unblock.
const protectionCmd = adminTarget(
  program
    .command('protection')
    .description(
      "Show the listeners' protection on a running balancer: refusals by reason, blocked clients, top talkers, surge state.",
    ),
).action(async (opts) => {
  process.exitCode = await (await import('../admin/protectionClient.js')).protection(opts);
});
adminTarget(
  protectionCmd.command('unblock <listener> <ip>').description('Lift the block detection put on a client.'),
).action(async (listener: string, ip: string, _opts, cmd: Command) => {
  // --admin and the others may be taken by the parent command: both are read.
  const opts = cmd.optsWithGlobals();
  process.exitCode = await (await import('../admin/protectionClient.js')).unblock(listener, ip, opts);
});

program
  .command('health')
  .description(
    'Exit 0 when the running balancer serves (every listener bound, usable servers in every default pool), 1 with the reason when not. For keepalived, systemd and container probes.',
  )
  .option('--admin <url>', 'admin API URL (default: $FULCRUM_ADMIN, admin.listen of the config file)')
  .option(
    '-c, --config <file>',
    `take the admin address from this config file (default: ./${DEFAULT_CONFIG} when present)`,
  )
  .option('--min-servers <n>', "usable servers each listener's default pool needs (default 1)", count)
  .option('--timeout <duration>', 'give up waiting for the admin API after this long', duration, 2000)
  .addHelpText(
    'after',
    '\nExamples:\n  fulcrum health -c /etc/fulcrum/fulcrum.yaml\n  fulcrum health --admin http://127.0.0.1:9000 --min-servers 2',
  )
  .action(async (opts: { admin?: string; config?: string; minServers?: number; timeout: number }) => {
    const { health } = await import('../admin/healthProbe.js');
    process.exitCode = await health({
      ...(opts.admin === undefined ? {} : { admin: opts.admin }),
      ...(opts.config === undefined ? {} : { config: opts.config }),
      ...(opts.minServers === undefined ? {} : { minServers: opts.minServers }),
      timeoutMs: opts.timeout,
    });
  });

// --------------------------------------------------------------------------- end of admin client

interface Running {
  runtime: Runtime;
  /** Reloads the config file with its state file on top (SIGHUP, like `POST /api/reload`). */
  reload(): Promise<ReloadSummary>;
  stop(): Promise<void>;
}

/**
 * Loads the file (with runtime changes from its state file on top), validates it all, then
 * starts the balancer with the admin endpoint and the access log that the config asks for: they
 * follow the config through every reload, and are loaded only when a config has them (the
 * metrics and logging libraries are not the proxy's concern otherwise).
 */
async function loadAndStart(file: string): Promise<Running> {
  try {
    const [
      { loadWithState, restoreStates, stateFileOf },
      { Control },
      { followAdmin, startAccessLog },
      { Runtime },
    ] = await Promise.all([
      import('../admin/state.js'),
      import('../admin/control.js'),
      import('../admin/followers.js'),
      import('../runtime/runtime.js'),
    ]);
    const applied = await loadWithState(file, log);
    // workers: N > 1: a supervisor of N worker processes (src/cluster/, docs/workers.md).
    const { workerCount } = await import('../cluster/workerCount.js');
    if (workerCount(applied.config) > 1) {
      const { Supervisor } = await import('../cluster/supervisor.js');
      const supervised = await Supervisor.start(file, applied, log);
      process.on('SIGUSR1', () => supervised.reopenLogs());
      return supervised;
    }
    const runtime = new Runtime(applied.config, { file, log });
    // Runtime changes (the admin API) and reloads, with or without the admin endpoint.
    const control = new Control(runtime, { stateFile: stateFileOf(file), log, loaded: applied });
    const access = await startAccessLog(runtime, log);
    const admin = await followAdmin(runtime, control, log);
    // The access log opens and the admin endpoint binds before the listeners do.
    await runtime.start();
    restoreStates(runtime, applied.states);
    process.on('SIGUSR1', () => access.reopen());
    return {
      runtime,
      reload: () => control.reload(),
      async stop() {
        control.close();
        await admin.close();
        await runtime.shutdown();
        await access.close();
      },
    };
  } catch (err) {
    return exitWithConfigError(err);
  }
}

/** The `-c` file, else ./fulcrum.yaml; without either, says so and exits 2. */
function requireConfig(given: string | undefined): string {
  const file = configOrDefault(given);
  if (file !== undefined) return file;
  process.stderr.write(`fulcrum: no config file: give -c FILE, or run where ./${DEFAULT_CONFIG} is\n`);
  process.exit(EXIT_CONFIG);
}

function exitWithConfigError(err: unknown): never {
  if (err instanceof ConfigError) process.stderr.write(`${err.message}\n`);
  else process.stderr.write(`fulcrum: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(EXIT_CONFIG);
}

function port(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new InvalidArgumentError('expected a port 0..65535');
  return n;
}

function count(value: string): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isInteger(n) || n < 0)
    throw new InvalidArgumentError('expected an integer >= 0');
  return n;
}

function duration(value: string): number {
  try {
    return parseDuration(value);
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message);
  }
}

await program.parseAsync(process.argv);
