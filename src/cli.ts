// CLI wiring only: each command lives in src/commands/<name>.ts as `async run(opts)` and
// returns an exit code. Nothing here prints except commander's own help and errors.
import { Command, Option } from 'commander';
import { VERSION } from './version.ts';

const program = new Command();
program
  .name('gatewayctl')
  .description('Compile a declarative gateway.yaml into a complete nginx + njs API and LLM gateway')
  .version(VERSION, '-v, --version')
  .showHelpAfterError();

const configOpt = () => new Option('-c, --config <file>', 'gateway config').default('gateway.yaml');
const outOpt = () => new Option('-o, --out <dir>', 'build output directory').default('dist');
const nginxOpt = () => new Option('--nginx <bin>', 'nginx binary (default: $GATEWAYCTL_NGINX, project runtime, PATH)');

let exitCode = 0;
const wrap =
  <A extends unknown[]>(fn: (...args: A) => Promise<number>) =>
  async (...args: A) => {
    exitCode = await fn(...args);
  };

async function cmd(name: string) {
  return import(`./commands/${name}.ts`);
}

// A command's extra help text lives in its module. Commander prints it only for a command
// named on the command line (`gatewayctl build --help`, `gatewayctl help build`, or after a
// usage error in `build`), so only those modules load here: `--version` or a command's run
// does not pay for loading every other command.
const named = new Set(process.argv.slice(2));
async function help(name: string): Promise<string> {
  return named.has(name) ? ((await cmd(name)) as { help: string }).help : '';
}

program
  .command('init')
  .description('write a commented starter gateway.yaml')
  .addOption(configOpt())
  .option('-f, --force', 'overwrite an existing file')
  .addHelpText('after', '\nExamples:\n  $ gatewayctl init\n  $ gatewayctl init -c gw/prod.yaml --force')
  .action(wrap(async (o) => (await cmd('init')).run(o)));

program
  .command('validate')
  .description('schema and semantic checks; every problem, positioned')
  .addOption(configOpt())
  .option('--json', 'machine-readable diagnostics')
  .addHelpText('after', await help('validate'))
  .action(wrap(async (o) => (await cmd('validate')).run(o)));

program
  .command('build')
  .description('validate and render the nginx configuration (atomic swap into the output dir)')
  .addOption(configOpt())
  .addOption(new Option('-o, --out <dir>', 'build output directory (default: dist; k8s with --target k8s)'))
  .addOption(new Option('--target <target>', 'nginx: the nginx config; k8s: Kubernetes manifests (kustomize directory)').choices(['nginx', 'k8s']).default('nginx'))
  .option('--check', 'exit 1 when the output on disk is stale; write nothing')
  .addOption(nginxOpt())
  .option('--modules-dir <dir>', 'dynamic modules of the target nginx (decides brotli)')
  .addHelpText('after', await help('build'))
  .action(wrap(async (o) => (await cmd('build')).run(o)));

program
  .command('check')
  .description('build, then run nginx -t on the result and map errors back to gateway.yaml')
  .addOption(configOpt())
  .addOption(nginxOpt())
  .option('--strict-dns', 'do not substitute upstream hosts that do not resolve here')
  .option('--keep', 'keep the scratch directory for inspection')
  .addHelpText('after', await help('check'))
  .action(wrap(async (o) => (await cmd('check')).run(o)));

program
  .command('up')
  .description('build and run nginx in the foreground (Ctrl-C stops)')
  .addOption(configOpt())
  .addOption(outOpt())
  .option('--demo', 'also start the demo upstreams the bundled gateway.yaml points at')
  .addOption(nginxOpt())
  .option('--prefix <dir>', 'nginx prefix for logs, pid, temp and cache', '.gatewayctl/run')
  .addHelpText('after', await help('up'))
  .action(wrap(async (o) => (await cmd('up')).run(o)));

program
  .command('doctor')
  .description('find nginx, report nginx/njs versions and modules, managed certificates; say what is missing')
  .addOption(nginxOpt())
  .option('-c, --config <file>', 'gateway config (locates managed certificates)')
  .option('--dist <dir>', 'build output to check against this nginx (default: dist when present)')
  .option('--json', 'machine-readable report')
  .addHelpText('after', await help('doctor'))
  .action(wrap(async (o) => (await cmd('doctor')).run(o)));

program
  .command('deploy')
  .description('install a build as a new release, nginx -t, switch, reload, wait for /ready; restore on failure')
  .option('--from <dir>', 'build output to deploy', 'dist')
  .option('--target <dir>', 'deploy directory (releases/, current, previous, deploy.lock)', '.gatewayctl/deploy')
  .addOption(nginxOpt())
  .option('--prefix <dir>', 'nginx prefix (logs, run, temp, cache); default: the target')
  .option('--keep <n>', 'releases to keep (live and previous always kept)', '5')
  .option('--reload-cmd <cmd>', 'reload with this shell command instead of SIGHUP/start (e.g. "systemctl reload nginx")')
  .option('--ready-timeout <seconds>', 'how long to wait for /ready to report the new config', '15')
  .option('--json', 'machine-readable result')
  .option('-q, --quiet', 'print only the result')
  .addHelpText('after', await help('deploy'))
  .action(wrap(async (o) => (await cmd('deploy')).run(o)));

program
  .command('rollback')
  .description('make the previous (or --to) release live again')
  .option('--to <release>', 'release name or sequence number, or a unique prefix of a name, output hash or input hash (default: previous)')
  .option('--target <dir>', 'deploy directory', '.gatewayctl/deploy')
  .addOption(nginxOpt())
  .option('--prefix <dir>', 'nginx prefix; default: the target')
  .option('--reload-cmd <cmd>', 'reload with this shell command instead of SIGHUP/start')
  .option('--ready-timeout <seconds>', 'how long to wait for /ready', '15')
  .option('--json', 'machine-readable result')
  .option('-q, --quiet', 'print only the result')
  .addHelpText('after', await help('rollback'))
  .action(wrap(async (o) => (await cmd('rollback')).run(o)));

program
  .command('releases')
  .description('list deployed releases (id, time, input and output hash, live/previous)')
  .option('--target <dir>', 'deploy directory', '.gatewayctl/deploy')
  .option('--json', 'machine-readable list')
  .addHelpText('after', await help('releases'))
  .action(wrap(async (o) => (await cmd('releases')).run(o)));

program
  .command('replicas')
  .description("which config each replica serves: asks every replica's /ready, reports drift from -c and from fleet.replicas")
  .addOption(configOpt())
  .option('--endpoint <host:port>', 'a replica\'s status listener (repeatable)', (v: string, prev: string[] = []) => [...prev, v])
  .option('--dns <name:port>', 'a DNS name resolving to every replica (Kubernetes: the <name>-replicas headless Service)')
  .option('--json', 'machine-readable report')
  .addHelpText('after', await help('replicas'))
  .action(wrap(async (o) => (await cmd('replicas')).run(o)));

program
  .command('diff')
  .description('what a config change does: semantic summary (risky changes flagged) and unified diff of the generated nginx files')
  .addOption(configOpt())
  .option('--base <ref>', 'git ref to compare with (default: merge base with main)')
  .option('--against <dir>', 'build, release or deploy target directory to compare with')
  .option('--format <format>', 'text, json or markdown', 'text')
  .option('--exit-code', 'exit 1 when the generated config differs (errors exit 2)')
  .option('--color <when>', 'auto, always or never (text output only)', 'auto')
  .option('-U, --context <n>', 'lines of context in the unified diff', '3')
  .addHelpText('after', await help('diff'))
  .action(wrap(async (o) => (await cmd('diff')).run(o)));

const keys = program
  .command('keys')
  .description('API keys: create, list, revoke, rotate (only SHA-256 hashes are stored)');
const keysFile = () => new Option('--file <file>', 'keys file').default('keys.yaml');
const repeat = (v: string, prev: string[] = []) => [...prev, v];
/** --live and the replicas it reaches (src/commands/fanout.ts) */
const liveOpts = (c: Command, withFlag = true): Command => {
  if (withFlag) c.option('--live', 'also apply it to the running gateway(s) now, through the admin API (no rebuild or reload)');
  return c
    .addOption(configOpt())
    .option('--endpoint <host:port>', "a replica's status listener (repeatable; default: gateway.yaml's global.status)", repeat)
    .option('--dns <name:port>', 'a DNS name resolving to every replica (Kubernetes: the <name>-replicas headless Service)')
    .option('--url <url>', 'the status listener as a URL')
    .option('--token-env <name>', 'environment variable holding the admin token', 'GATEWAY_ADMIN_TOKEN');
};
keys
  .command('create')
  .description('create a key; it is printed once')
  .requiredOption('--name <name>', 'client name')
  .option('--role <role>', 'role')
  .option('--tier <tier>', 'tier (rate-limit class)')
  .option('--expires <date>', 'ISO date or relative (90d, 12h)')
  .option('--json', 'machine-readable output')
  .addOption(keysFile())
  .addHelpText('after', '\nExamples:\n  $ gatewayctl keys create --name acme --role admin --tier pro --expires 90d\n  $ gatewayctl keys create --name acme --live --endpoint 10.0.0.5:8081 --endpoint 10.0.0.6:8081')
  .action(wrap(async (o) => (await cmd('keys')).run('create', o)));
liveOpts(keys.commands[keys.commands.length - 1]!);
keys
  .command('list')
  .description('list keys (never shows the keys themselves)')
  .option('--json', 'machine-readable output')
  .addOption(keysFile())
  .action(wrap(async (o) => (await cmd('keys')).run('list', o)));
keys
  .command('revoke <target>')
  .description('revoke a key by name or id')
  .addOption(keysFile())
  .action(wrap(async (target, o) => (await cmd('keys')).run('revoke', { ...o, target })));
liveOpts(keys.commands[keys.commands.length - 1]!);
keys
  .command('rotate <name>')
  .description('issue a new key for a client and revoke the old one')
  .option('--grace-until <date>', 'keep the old key valid until then')
  .option('--json', 'machine-readable output')
  .addOption(keysFile())
  .action(wrap(async (name, o) => (await cmd('keys')).run('rotate', { ...o, target: name })));
liveOpts(keys.commands[keys.commands.length - 1]!);
liveOpts(
  keys
    .command('sync')
    .description('bring every replica in line with keys.yaml through the admin API: keys it lacks added live, revoked keys revoked')
    .addOption(keysFile())
    .action(wrap(async (o) => (await cmd('keys')).run('sync', o))),
  false,
);
liveOpts(
  keys
    .command('live')
    .description("every replica's runtime key changes (admin API), drift between replicas and from keys.yaml")
    .option('--json', 'machine-readable output')
    .addOption(keysFile())
    .action(wrap(async (o) => (await cmd('keys')).run('live', o))),
  false,
);
keys
  .command('map')
  .description('print the nginx key map (digests of active keys: by SHA-256, and by id for keys nginx checks itself; `build` writes it to conf.d/keys.map)')
  .option('--out <file>', 'write it here (mode 0600) instead of stdout')
  .addOption(keysFile())
  .addHelpText('after', '\nExamples:\n  $ gatewayctl keys map\n  $ gatewayctl keys map --file keys.yaml --out dist/conf.d/keys.map')
  .action(wrap(async (o) => (await cmd('keys')).run('map', o)));

program
  .command('njs-lint')
  .description('check the njs sources and bundle against the njs 0.8 language subset')
  .addHelpText('after', await help('njs-lint'))
  .action(wrap(async () => (await cmd('njs-lint')).run()));

const tls = program.command('tls').description('certificates: self-signed, Let\'s Encrypt (ACME), renewal, status');
tls
  .command('selfsigned')
  .description('write a development certificate and key under ssl/')
  .requiredOption('--domain <domain...>', 'DNS names')
  .option('--out <dir>', 'output directory', 'ssl')
  .option('--key-type <type>', 'ec or rsa', 'ec')
  .option('--days <n>', 'validity in days', '365')
  .action(wrap(async (o) => (await cmd('tls')).run('selfsigned', o)));
// issue/renew read their defaults from gateway.yaml's tls.acme, then reload the gateway
// that serves the config (src/commands/tls-gateway.ts).
const gatewayOpts = (c: Command) =>
  c
    .addOption(configOpt())
    .option('--target <dir>', 'deployment to reload (gatewayctl deploy --target)', '.gatewayctl/deploy')
    .option('--prefix <dir>', 'nginx prefix of the gateway to reload (default: the target for a deployment, .gatewayctl/run for gatewayctl up)')
    .option('--reload-cmd <cmd>', "shell command that reloads the serving nginx, e.g. 'systemctl reload nginx'")
    .option('--no-reload', 'only store the certificate; do not reload (the gateway keeps serving the old one)')
    .addOption(nginxOpt());
gatewayOpts(
  tls
    .command('issue')
    .description('obtain a certificate over ACME HTTP-01 served by the gateway, then reload the gateway')
    .option('--domain <domain...>', 'DNS names (default: tls.acme.domains)')
    .option('--email <email>', 'ACME account contact (default: tls.acme.email)')
    .option('--staging', 'Let\'s Encrypt staging directory')
    .option('--directory <url>', 'ACME directory URL (default: tls.acme.directory or Let\'s Encrypt)')
    .option('--key-type <type>', 'ec or rsa')
    .option('--webroot <dir>', 'challenge webroot served by nginx (default: tls.acme.webroot or .gatewayctl/acme)')
    .option('--certs-dir <dir>', 'managed certificates (default: tls.acme.certs_dir or ssl/managed)'),
)
  .addHelpText('after', '\nExamples:\n  $ gatewayctl tls issue                       # everything from gateway.yaml tls.acme\n  $ gatewayctl tls issue --domain api.example.com --email ops@example.com --staging')
  .action(
    wrap(async (o) => {
      const g = await import('./commands/tls-gateway.ts');
      const full = g.withConfigDefaults(o);
      return (await cmd('tls')).run('issue', full, { afterIssue: g.reloadServingGateway(full, 'issue') });
    }),
  );
gatewayOpts(
  tls
    .command('renew')
    .description('renew managed certificates expiring within the window, then reload the gateway once')
    .option('--days <n>', 'renewal window in days', '30')
    .option('--force', 'renew now regardless of expiry')
    .option('--certs-dir <dir>', 'managed certificates (default: tls.acme.certs_dir or ssl/managed)'),
)
  .addHelpText(
    'after',
    "\nExamples:\n  $ gatewayctl tls renew                       # from cron or scripts/gatewayctl-renew.timer\n  $ gatewayctl tls renew --force --days 90\n  $ gatewayctl tls renew --target /etc/gatewayctl --prefix /etc/nginx --nginx /usr/sbin/nginx --reload-cmd 'systemctl reload nginx'\n\nExit status: 0 nothing due, or renewed and reloaded; 1 a renewal failed, or no running gateway could be reloaded\n(the renewed certificate is stored; the next run retries the reload).",
  )
  .action(
    wrap(async (o) => {
      const g = await import('./commands/tls-gateway.ts');
      const full = g.withConfigDefaults(o);
      return (await cmd('tls')).run('renew', full, { afterIssue: g.reloadServingGateway(full, 'renew') });
    }),
  );
tls
  .command('status')
  .description('list managed certificates and days to expiry')
  .option('--certs-dir <dir>', 'managed certificates', 'ssl/managed')
  .option('--json', 'machine-readable output')
  .action(wrap(async (o) => (await cmd('tls')).run('status', o)));

program
  .command('route')
  .description('explain where a consistent-hash key goes (nginx\'s own ring placement) and where it fails over')
  .addOption(configOpt())
  .option('--key <key>', 'the value nginx hashes (header, cookie, claim, body field, …)')
  .option('--upstream <name>', 'consistent_hash upstream (needed when there are several)')
  .option('--model <id>', 'the upstream serving this model (models catalogue)')
  .option('--body <json>', 'a JSON request body: model and body-field key as njs reads them')
  .option('--unavailable <server...>', 'treat these servers as failed (passive health)')
  .option('--live', 'place the key with the running gateway\'s runtime servers and unavailable ones (its /admin/status)')
  .option('--url <url>', 'the /admin/status URL to read (implies --live)')
  .option('--route <name>', 'a route with traffic rules: the upstream it picks for the request described by the options below')
  .option('--header <name:value...>', 'request header (with --route)')
  .option('--cookie <name=value...>', 'request cookie (with --route)')
  .option('--query <name=value...>', 'query argument (with --route)')
  .option('--claim <name=value...>', 'claim of the verified JWT (with --route)')
  .option('--client-ip <address>', 'client address (with --route: sticky client_ip)')
  .option('--client-id <id>', 'authenticated client (with --route: sticky client_id)')
  .option('--json', 'machine-readable output')
  .addHelpText('after', await help('route'))
  .action(wrap(async (o) => (await cmd('route')).run(o)));

const collect = (v: string, prev: string[] = []) => [...prev, v];
program
  .command('bench')
  .description('measure your config: each route\'s per-request CPU cost against a stub upstream, as a ratio to plain nginx')
  .addOption(configOpt())
  .option('--seconds <s>', 'seconds of load per route and round', '2')
  .option('--rounds <n>', 'rounds (each route\'s figure is the median)', '3')
  .option('--warmup <s>', 'seconds of warm-up per route', '1')
  .option('--connections <n>', 'keep-alive connections', '32')
  .option('--threads <n>', 'wrk threads', '2')
  .addOption(new Option('--client <client>', 'load client: wrk when on PATH, else a Node client').choices(['auto', 'wrk', 'node']).default('auto'))
  .option('--route <names>', 'only these routes (comma-separated)')
  .option('--path <route=path>', 'the request path of a route (repeatable)', collect)
  .option('--header <[route=]Name: value>', 'a header to send, to one route or to all (repeatable), e.g. a bearer token for a JWKS provider', collect)
  .option('--instructions [requests]', 'also count instructions per request with valgrind\'s callgrind (load-independent)')
  .addOption(nginxOpt())
  .option('--json', 'machine-readable report')
  .addHelpText('after', await help('bench'))
  .action(wrap(async (o) => (await cmd('bench')).run(o)));

program
  .command('top')
  .description('terminal view of a running gateway from its /metrics: req/s, errors, p50/p95/p99 per route, cache hit rate, tokens/s per model')
  .option('--url <url>', 'the gateway\'s metrics URL', 'http://127.0.0.1:8081/metrics')
  .option('--interval <seconds>', 'seconds between scrapes (the window shown)', '2')
  .option('--once', 'show one window and exit (for scripts)')
  .option('--json', 'one JSON object per window')
  .addHelpText('after', await help('top'))
  .action(wrap(async (o) => (await cmd('top')).run(o)));

program
  .command('status')
  .description('upstreams, servers, health checks and circuit breakers of the running gateway (/admin/status)')
  .addOption(configOpt())
  .option('--url <url>', 'the status endpoint (default: http://<global.status.listen>/admin/status)')
  .option('--json', 'machine-readable output')
  .addHelpText('after', await help('status'))
  .action(wrap(async (o) => (await cmd('status')).run(o)));

const servers = program.command('servers').description('upstream servers at runtime through the admin API (admin_api:): add, drain, remove, list');
for (const action of ['add', 'drain', 'remove', 'list'] as const) {
  const c = servers
    .command(action)
    .description(
      action === 'add'
        ? 'add a server to an upstream, effective on the next request'
        : action === 'drain'
          ? 'stop sending new requests to a server'
          : action === 'remove'
            ? 'remove a server added at runtime'
            : 'list an upstream\'s servers (gateway.yaml and runtime)',
    )
    .addOption(configOpt())
    .requiredOption('--upstream <name>', 'the upstream')
    .option('--url <url>', 'the status listener (default: http://<global.status.listen>)')
    .option('--endpoint <host:port>', "every replica: its status listener (repeatable)", repeat)
    .option('--dns <name:port>', 'every replica: a DNS name resolving to each (Kubernetes: the <name>-replicas headless Service)')
    .option('--token-env <name>', 'environment variable holding the admin token', 'GATEWAY_ADMIN_TOKEN')
    .option('--json', 'machine-readable output');
  if (action !== 'list') c.requiredOption('--address <host:port>', 'the server (IP address and port)');
  if (action === 'add') c.option('--weight <n>', 'weight (default 1)').option('--models <id...>', 'models it serves (default: every model of the upstream)');
  c.addHelpText('after', await help('servers')).action(wrap(async (o) => (await cmd('servers')).run(action, o)));
}

try {
  await program.parseAsync(process.argv);
} catch (e) {
  process.stderr.write(`gatewayctl: ${(e as Error).message}\n`);
  exitCode = 1;
}
process.exitCode = exitCode;
