// What tern's browser end-to-end tests share, whatever the browser: the command line, REST
// credentials, ternd started with its config and waited for, its /metrics, the throw-away CA and
// server certificate, the operator's relay-check page served to the browser, the in-page call and
// the checks on its result, and the run's reporting and exit status. e2e.mjs (Chromium, through
// playwright-core) and e2e-firefox.mjs (Firefox, through puppeteer-core) keep only what differs.
// One run per process: the state below (work directory, children, failures) is that run's.

import { execFileSync, spawn } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, writeFileSync, mkdirSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const here = path.dirname(fileURLToPath(import.meta.url));
export const secret = 'e2e-shared-secret';
export const realm = 'e2e.tern.test';
const started = Date.now();
const children = [];
let terndPath;
let work;

export function log(...parts) {
  console.log(`[${((Date.now() - started) / 1000).toFixed(1)}s]`, ...parts);
}

// `--name value` pairs from the command line. --ternd is required (else `usage` and exit 2); the
// run's work directory is made here, under the system's temporary directory, named by `workPrefix`.
export function init({ usage, workPrefix }) {
  const args = Object.fromEntries(
    process.argv.slice(2).reduce((pairs, a, i, all) => (a.startsWith('--') ? [...pairs, [a.slice(2), all[i + 1]]] : pairs), []));
  terndPath = args.ternd;
  if (!terndPath) {
    console.error(usage);
    process.exit(2);
  }
  work = mkdtempSync(path.join(tmpdir(), workPrefix));
  return args;
}

// A path inside this run's work directory (removed at the end of the run).
export function workPath(...parts) {
  return path.join(work, ...parts);
}

// The case filter: --only NAME runs the cases whose names contain NAME.
export function wanted(args) {
  const only = args.only;
  return (n) => !only || n.includes(only);
}

// ---------------------------------------------------------------------------------------------
// Credentials, as a backend mints them (docs/credentials.md).

export function restCredential(user, ttlSeconds, key = secret) {
  const username = `${Math.floor(Date.now() / 1000) + ttlSeconds}:${user}`;
  const credential = createHmac('sha1', key).update(username).digest('base64');
  return { username, credential };
}

// ---------------------------------------------------------------------------------------------
// Processes and ports. Every child is killed by its own PID on exit, and only those.

export async function freePort() {
  // TCP and UDP on both families must be free; ask the kernel for a TCP port and accept it if
  // the rest happen to be free too (the namespace is otherwise empty).
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

export function startTernd(name, yaml) {
  const dir = workPath(name);
  mkdirSync(dir, { recursive: true });
  const config = path.join(dir, 'tern.yaml');
  writeFileSync(config, yaml);
  const child = spawn(terndPath, ['--config', config], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  let output = '';
  child.stdout.on('data', (d) => { output += d; });
  child.stderr.on('data', (d) => { output += d; });
  const ready = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${name}: ternd did not start:\n${output}`)), 10000);
    const onData = () => {
      if (output.includes('is listening on')) { clearTimeout(timer); resolve(); }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.on('exit', (code) => { clearTimeout(timer); reject(new Error(`${name}: ternd exited ${code}:\n${output}`)); });
  });
  return { child, ready, config, output: () => output };
}

// A Redis of the run's own, for a fleet of ternd: Debian's redis-server in the foreground on
// 127.0.0.1:`port`, with a password and no persistence (nothing written to disk), its files in
// the work directory. It is a child like ternd: stopped by its PID at the end of the run.
// cli(...args) runs redis-cli against it (the password through REDISCLI_AUTH, not argv) and
// returns its output, trimmed.
export function startRedis(name, { port, password }) {
  const dir = workPath(name);
  mkdirSync(dir, { recursive: true });
  const server = existsSync('/usr/bin/redis-server') ? '/usr/bin/redis-server' : 'redis-server';
  const child = spawn(server, ['--bind', '127.0.0.1', '--port', String(port), '--requirepass', password,
    '--save', '', '--appendonly', 'no', '--dir', dir, '--daemonize', 'no', '--logfile', ''],
  { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  let output = '';
  child.stdout.on('data', (d) => { output += d; });
  child.stderr.on('data', (d) => { output += d; });
  const ready = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${name}: redis-server did not start:\n${output}`)), 10000);
    const onData = () => {
      if (output.includes('Ready to accept connections')) { clearTimeout(timer); resolve(); }
    };
    child.stdout.on('data', onData);
    child.on('exit', (code) => { clearTimeout(timer); reject(new Error(`${name}: redis-server exited ${code}:\n${output}`)); });
    child.on('error', (e) => { clearTimeout(timer); reject(new Error(`${name}: redis-server could not be started (${e.message}; Debian package redis-server)`)); });
  });
  const cli = (...a) => execFileSync('redis-cli', ['-h', '127.0.0.1', '-p', String(port), ...a],
    { env: { ...process.env, REDISCLI_AUTH: password }, stdio: ['ignore', 'pipe', 'pipe'] }).toString().trim();
  return { child, ready, cli, url: `redis://:${password}@127.0.0.1:${port}/0`, output: () => output };
}

// Polls `probe` (sync or async) every `stepMs` until it returns something truthy, which it
// returns; null after `timeoutMs`.
export async function until(probe, timeoutMs, stepMs = 100) {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v) return v;
    if (Date.now() >= end) return null;
    await new Promise((r) => setTimeout(r, stepMs));
  }
}

function killChildren() {
  for (const c of children) {
    if (c.exitCode === null && c.signalCode === null) {
      try { process.kill(c.pid, 'SIGTERM'); } catch { /* already gone */ }
    }
  }
}

// ternd's configuration: UDP and TCP on 127.0.0.1 and ::1, TLS on 127.0.0.1 (and on
// `tlsAddress6` when given), REST credentials with `terndSecret`, the relay's peer allowance
// (`allowPeers`, else ternd's default policy) and, with `metricsPort`, the Prometheus endpoint.
// TLS serves `pki`'s certificate, or with `tlsNames` that certificate to those SNI names only
// (tls.certificates). `edge` makes the tls:// listeners shared ports: { fallback: 'ip:port',
// turnNames: [...], proxyProtocol: 'v2' | 'off' }. `kernelFastPath`: relay.kernel_fast_path.
export function terndYaml({
  port, tlsPort, pki, terndSecret = secret, tlsAddress6, allowPeers, metricsPort, tlsNames, edge,
  kernelFastPath,
}) {
  const listen6 = [`"udp://[::1]:${port}"`, `"tcp://[::1]:${port}"`];
  if (tlsAddress6) listen6.push(`"tls://[${tlsAddress6}]:${tlsPort}"`);
  return [
    `realm: ${realm}`,
    'threads: 2',
    `listen: [ "udp://127.0.0.1:${port}", "tcp://127.0.0.1:${port}", "tls://127.0.0.1:${tlsPort}",`,
    `          ${listen6.join(', ')} ]`,
    tlsNames
      ? `tls: { certificates: [ { names: [ ${tlsNames.join(', ')} ], ` +
        `certificate: ${pki.cert}, private_key: ${pki.key} } ] }`
      : `tls: { certificate: ${pki.cert}, private_key: ${pki.key} }`,
    edge ? `edge: { fallback: "${edge.fallback}", turn_names: [ ${edge.turnNames.join(', ')} ], ` +
      `fallback_proxy_protocol: ${edge.proxyProtocol || 'off'} }` : null,
    'auth:',
    `  secrets: [ "${terndSecret}" ]`,
    'relay:',
    '  default_family: client',
    allowPeers ? `  allow_peers: [ ${allowPeers.join(', ')} ]` : null,
    kernelFastPath ? `  kernel_fast_path: ${kernelFastPath}` : null,
    metricsPort ? `metrics: { listen: "127.0.0.1:${metricsPort}" }` : null,
    'limits: { shutdown_grace: 0 }',
    'log: { level: info }',
    '',
  ].filter((line) => line !== null).join('\n');
}

// One node of a fleet (docs/configuration.md, `fleet`): UDP on each of `listen` (ip:port), REST
// credentials with the test's secret, the nonce secret every node of a fleet shares, relay ports
// `relayPorts` ("first-last"; disjoint per node, so a relayed port names its node), the metrics
// endpoint (/metrics, POST /drain) on 127.0.0.1:`metricsPort`, a drain grace of `grace` seconds
// (a drained node with live allocations stays up that long) and the fleet: `redisUrl`, `nodeId`,
// `advertise` (where the other nodes send clients with a 300 Try Alternate).
export function fleetNodeYaml({ nodeId, listen, advertise, relayPorts, metricsPort, redisUrl, allowPeers, grace = 120 }) {
  return [
    `realm: ${realm}`,
    'threads: 2',
    `listen: [ ${listen.map((a) => `"udp://${a}"`).join(', ')} ]`,
    'auth:',
    `  secrets: [ "${secret}" ]`,
    '  nonce_secret: "e2e-fleet-nonce-secret-shared-by-every-node"',
    'relay:',
    `  ports: ${relayPorts}`,
    allowPeers ? `  allow_peers: [ ${allowPeers.join(', ')} ]` : null,
    `metrics: { listen: "127.0.0.1:${metricsPort}" }`,
    `limits: { shutdown_grace: ${grace} }`,
    'fleet:',
    `  redis: "${redisUrl}"`,
    `  node_id: ${nodeId}`,
    `  advertise: [ ${advertise.map((a) => `"${a}"`).join(', ')} ]`,
    'log: { level: info }',
    '',
  ].filter((line) => line !== null).join('\n');
}

// POST /drain on a ternd's metrics endpoint (what `ternctl drain` sends): its status and body.
export async function drain(metricsPort) {
  const res = await fetch(`http://127.0.0.1:${metricsPort}/drain`, { method: 'POST', signal: AbortSignal.timeout(5000) });
  return { status: res.status, body: (await res.text()).trim() };
}

// ---------------------------------------------------------------------------------------------
// A server certificate for `hostNames` (the first is its CN) and `ipAddresses`, signed by a
// throw-away CA (`caName`) that only this run's browser trusts: the CA goes into the NSS database
// at `nssdb`, the one the browser reads its trust anchors from. `issue(label, hostNames)` signs
// another server certificate with the same CA (files `label`.pem and `label`.key).

export function makeCertificates({ caName, hostNames, ipAddresses = [], nssdb }) {
  const dir = workPath('pki');
  mkdirSync(dir, { recursive: true });
  const f = (n) => path.join(dir, n);
  const openssl = (...a) => execFileSync('openssl', a, { stdio: 'pipe' });
  openssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
    '-keyout', f('ca.key'), '-out', f('ca.pem'), '-days', '2', '-subj', `/CN=${caName}`,
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign');
  const issue = (label, names, addresses = []) => {
    openssl('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
      '-keyout', f(`${label}.key`), '-out', f(`${label}.csr`), '-subj', `/CN=${names[0]}`);
    const altNames = [...names.map((n) => `DNS:${n}`), ...addresses.map((a) => `IP:${a}`)];
    writeFileSync(f(`${label}.cnf`),
      'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n' +
      `subjectAltName=${altNames.join(',')}\n`);
    openssl('x509', '-req', '-in', f(`${label}.csr`), '-CA', f('ca.pem'), '-CAkey', f('ca.key'),
      '-CAcreateserial', '-days', '2', '-extfile', f(`${label}.cnf`), '-out', f(`${label}.pem`));
    return { cert: f(`${label}.pem`), key: f(`${label}.key`) };
  };
  const server = issue('server', hostNames, ipAddresses);
  mkdirSync(nssdb, { recursive: true });
  execFileSync('certutil', ['-N', '-d', `sql:${nssdb}`, '--empty-password'], { stdio: 'pipe' });
  execFileSync('certutil', ['-A', '-d', `sql:${nssdb}`, '-n', 'tern-e2e-ca', '-t', 'C,,', '-i', f('ca.pem')],
    { stdio: 'pipe' });
  return { ...server, ca: f('ca.pem'), issue };
}

// ---------------------------------------------------------------------------------------------
// A website: Debian's nginx, in the foreground, with a config, pid file, logs and temporary files
// of its own under the work directory (never the system's), serving `files` ({ urlPath: file })
// over HTTPS (HTTP/2 and 1.1) for `names` on 127.0.0.1:`port` with `cert`. With `proxyProtocol`
// every connection must start with a PROXY header (what ternd's edge.fallback_proxy_protocol: v2
// writes; a connection without one fails), and the access log records the address it named.
// accessLog() returns that log, one line per request:
//   $remote_addr $proxy_protocol_addr $ssl_server_name "$request" $status $body_bytes_sent

export function startNginx(name, { port, cert, names, files, proxyProtocol = false }) {
  const dir = workPath(name);
  const root = path.join(dir, 'www');
  mkdirSync(root, { recursive: true });
  mkdirSync(path.join(dir, 'tmp'), { recursive: true });
  for (const [urlPath, file] of Object.entries(files)) writeFileSync(path.join(root, urlPath), readFileSync(file));
  const d = (n) => path.join(dir, n);
  const conf = d('nginx.conf');
  writeFileSync(conf, [
    'daemon off;',
    'worker_processes 1;',
    // The work directory is private to root (mkdtemp: mode 0700): the worker, nobody by default,
    // could not read the site under it.
    'user root;',
    `pid ${d('nginx.pid')};`,
    `error_log ${d('error.log')} info;`,
    'events { worker_connections 256; }',
    'http {',
    '  types { text/html html; }',
    '  default_type application/octet-stream;',
    '  log_format tern_e2e \'$remote_addr $proxy_protocol_addr $ssl_server_name "$request" $status $body_bytes_sent\';',
    `  access_log ${d('access.log')} tern_e2e;`,
    ...['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((t) => `  ${t}_temp_path ${d('tmp')}/${t};`),
    '  server {',
    `    listen 127.0.0.1:${port} ssl http2${proxyProtocol ? ' proxy_protocol' : ''};`,
    `    server_name ${names.join(' ')};`,
    `    ssl_certificate ${cert.cert};`,
    `    ssl_certificate_key ${cert.key};`,
    ...(proxyProtocol ? ['    set_real_ip_from 127.0.0.1;', '    real_ip_header proxy_protocol;'] : []),
    `    root ${root};`,
    '    location = /favicon.ico { access_log off; return 204; }',
    '  }',
    '}',
    '',
  ].join('\n'));
  // Debian installs it in /usr/sbin, which not every PATH holds.
  const nginx = existsSync('/usr/sbin/nginx') ? '/usr/sbin/nginx' : 'nginx';
  const child = spawn(nginx, ['-p', dir, '-c', conf, '-e', d('error.log')], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  let output = '';
  child.stdout.on('data', (x) => { output += x; });
  child.stderr.on('data', (x) => { output += x; });
  const readLog = (n) => { try { return readFileSync(d(n), 'utf8'); } catch { return ''; } };
  const errors = () => `${output}${readLog('error.log')}`;
  // nginx writes its pid file once its listening sockets are open.
  const ready = new Promise((resolve, reject) => {
    const timer = setInterval(() => {
      try { readFileSync(d('nginx.pid')); } catch { return; }
      clearInterval(timer);
      clearTimeout(deadline);
      resolve();
    }, 50);
    const deadline = setTimeout(() => {
      clearInterval(timer);
      reject(new Error(`${name}: nginx did not start:\n${errors()}`));
    }, 10000);
    const fail = (why) => {
      clearInterval(timer);
      clearTimeout(deadline);
      reject(new Error(`${name}: nginx ${why}:\n${errors()}`));
    };
    child.on('exit', (code) => fail(`exited ${code}`));
    child.on('error', (e) => fail(`could not be started (${e.message}; Debian package nginx)`));
  });
  return { child, ready, accessLog: () => readLog('access.log'), errors };
}

// ---------------------------------------------------------------------------------------------
// ternd's Prometheus metrics: what the server saw, next to what the browser reports.

export async function scrape(metricsPort) {
  const res = await fetch(`http://127.0.0.1:${metricsPort}/metrics`, { signal: AbortSignal.timeout(5000) });
  const text = await res.text();
  const values = new Map();
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = line.match(/^(\S+)\s+(\S+)$/);
    if (m) values.set(m[1], Number(m[2]));
  }
  return values;
}

// Counter increase between two scrapes for one series, written as Prometheus prints it.
export function delta(before, after, series) {
  return (after.get(series) || 0) - (before.get(series) || 0);
}

// Every request series that moved between two scrapes, but the normal 200s and 401 challenges.
export function unusualAnswers(before, after) {
  const moved = [];
  for (const [series, v] of after) {
    if (!series.startsWith('tern_requests_total{') && !series.startsWith('tern_stun_dropped_total{') &&
        !series.startsWith('tern_relay_dropped_packets_total{')) continue;
    if (/code="(200|401)"/.test(series)) continue;
    const d = v - (before.get(series) || 0);
    if (d > 0) moved.push(`${series} +${d}`);
  }
  return moved;
}

// The requests ternd answered between two scrapes, as "allocate 200x4 401x2, ...".
export function answered(before, after) {
  const byMethod = new Map();
  for (const [series, v] of after) {
    const m = series.match(/^tern_requests_total\{method="([^"]+)",code="([^"]+)"\}$/);
    const d = v - (before.get(series) || 0);
    if (!m || d <= 0) continue;
    byMethod.set(m[1], [...(byMethod.get(m[1]) || []), `${m[2]}x${d}`]);
  }
  return [...byMethod].map(([method, codes]) => `${method} ${codes.join(' ')}`).join(', ') || 'none';
}

// ---------------------------------------------------------------------------------------------
// The page under test: the operator's relay-check page (docs/relay-check.html), so the test and
// the operator's tool stay one piece of code. Served over plain HTTP on 127.0.0.1.

export async function servePage() {
  const pageHtml = readFileSync(path.join(here, '..', '..', 'docs', 'relay-check.html'));
  const http = createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'text/html' });
    res.end(pageHtml);
  });
  await new Promise((r) => http.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${http.address().port}/`, close: () => http.close() };
}

// The page's console errors in the test's log (playwright and puppeteer pages alike).
export function logPageErrors(page) {
  page.on('console', (m) => { if (m.type() === 'error') log(`page: ${m.text()}`); });
}

// One call between the page's two RTCPeerConnections through the TURN server at `urls`.
export function relayCall(page, urls, cred, { timeoutMs, messages, media }) {
  return page.evaluate((cfg) => window.relayCall(cfg), {
    iceServers: [{ urls, ...cred }], timeoutMs, messages, media,
  });
}

// The operator's form: its fields and the values to type in them, with fresh credentials.
export function operatorFields(host, port, tlsPort) {
  const cred = restCredential('operator', 600);
  return [['host', host], ['port', String(port)], ['tlsPort', String(tlsPort)],
    ['username', cred.username], ['credential', cred.credential]];
}

// Runs in the page: true once all `rows` rows (3 when not given: the form's three transports) of
// the results have their verdict.
export function operatorPageDone(rows) {
  const cells = [...document.querySelectorAll('#results td:nth-child(2)')];
  return cells.length === (rows || 3) && cells.every((c) => c.textContent !== 'running…');
}

// Runs in the page, over `#results tr`: the result rows' cells as text, without the header.
export function resultRows(trs) {
  return trs.slice(1).map((tr) => [...tr.cells].map((c) => c.textContent));
}

// ---------------------------------------------------------------------------------------------
// A fleet's redirection seen from a browser (docs/deployment.md#redirection-300-try-alternate):
// two ternd (nodes a and b) sharing a Redis of the run's own, node a drained while it holds
// allocations (so it stays up, answering every new Allocate with 300 Try Alternate naming b), and
// the browser given node a alone (turn:127.0.0.1:A?transport=udp). Relay ports are disjoint per
// node, so a relay candidate's port names the node that allocated it. Two rounds:
//
// redirect-loopback: b listens and is advertised on 127.0.0.1. Whether the browser follows is the
//   browser's choice, given by `followsLoopback`:
//   - Chromium does not. libwebrtc's TurnPort::SetAlternateServer refuses an ALTERNATE-SERVER that
//     is a loopback address (crbug.com/649118); Chromium 156's log, with --enable-logging=stderr
//     --vmodule=*turn_port*=1, shows one line per TURN port:
//       WARNING:third_party/webrtc/p2p/base/turn_port.cc:860] Port[...]: Blocking attempted
//       redirect to loopback address.
//     and the page gets icecandidateerror 300 "Failed to set alternate server." per port (6 for two
//     peer connections on three IPv4 networks). So with followsLoopback false the round expects
//     exactly that: a's 300s counted, no connection, only 300 errors, no allocation on b.
//   - Firefox's nICEr (nr_turn_stun_ctx_handle_redirect) has no such rule.
// redirect: b restarted listening and advertised on the namespace's veth address 10.77.0.1 (run-
//   e2e.sh), not loopback (fleet.advertise is read at start, so a restart, not a SIGHUP). The
//   browser must follow: relay candidates from b's address and port range, allocations on b only,
//   a relayed call through b (data channel both ways, audio, video), a's tern_fleet_redirects_total
//   counting the 300s.
// `prflxRemote` is checkRelayCall's (Firefox).
const FLEET_A_PORTS = [50000, 50499];
const FLEET_B_PORTS = [51000, 51499];
const VETH_ADDRESS = '10.77.0.1';

function relayCandidates(candidates) {
  return candidates.filter((c) => c.includes(' typ relay '))
    .map((c) => { const f = c.split(' '); return { address: f[4], port: Number(f[5]) }; });
}

const inRange = (port, [lo, hi]) => port >= lo && port <= hi;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// The Chromium/Firefox verdict on one round: what a and b counted and what the page saw.
async function redirectRound(page, { name, urlA, alternate, metricsA, metricsB, follows, prflxRemote }) {
  const a0 = await scrape(metricsA);
  const b0 = await scrape(metricsB);
  const r = await relayCall(page, urlA, restCredential('alice', 600),
    follows ? { timeoutMs: 20000, messages: 300, media: true } : { timeoutMs: 8000, messages: 0, media: false });
  const a1 = await scrape(metricsA);
  const b1 = await scrape(metricsB);
  const udp4 = 'tern_allocations_created_total{transport="udp",family="ipv4"}';
  const redirects = delta(a0, a1, 'tern_fleet_redirects_total');
  const sent300 = delta(a0, a1, 'tern_requests_total{method="allocate",code="300"}');
  const onA = delta(a0, a1, udp4);
  const onB = delta(b0, b1, udp4);
  const relays = relayCandidates(r.candidates);
  const errors = [...new Set(r.errors.map((e) => `${e.code} "${e.text}"`))].join(', ') || 'none';
  const ok = [
    check(name, sent300 >= 1 && redirects >= 1 && a1.get('tern_fleet_redirects_total') >= 1,
      `node a answered ${sent300} Allocates with 300 (tern_fleet_redirects_total +${redirects})`),
    check(name, onA === 0, `node a created ${onA} allocations while draining`),
  ];
  if (follows) {
    ok.push(...checkRelayCall(name, r, 'udp', false, { prflxRemote }));
    ok.push(check(name, relays.length > 0 && relays.every((c) => c.address === alternate.split(':')[0] && inRange(c.port, FLEET_B_PORTS)),
      `relay candidates not all node b's (${alternate.split(':')[0]}, ports ${FLEET_B_PORTS.join('-')}): ` +
      `${JSON.stringify(relays)}; icecandidateerror ${errors}`));
    ok.push(check(name, onB >= 2, `node b created ${onB} allocations`));
    ok.push(check(name, delta(b0, b1, 'tern_relayed_packets_total{direction="to_peer"}') > 0 &&
      delta(b0, b1, 'tern_relayed_packets_total{direction="to_client"}') > 0, 'node b relayed nothing'));
    if (ok.every(Boolean)) {
      log(`ok   ${name}: node a answered ${sent300} Allocates with 300 Try Alternate ${alternate}; the browser followed: ` +
        `${onB} allocations on b, relay candidates ${relays.map((c) => `${c.address}:${c.port}`).join(' ')}, ` +
        `${flowSummary(r)}; a's tern_fleet_redirects_total ${a1.get('tern_fleet_redirects_total')}` +
        `${r.errors.length ? `; icecandidateerror ${errors}` : ''}`);
    }
  } else {
    ok.push(check(name, !r.connected && relays.length === 0,
      `connected or relayed although the browser is expected not to follow a loopback redirect ` +
      `(states ${r.states}, relay candidates ${JSON.stringify(relays)})`));
    ok.push(check(name, r.errors.length > 0 && r.errors.every((e) => e.code === 300),
      `expected only icecandidateerror 300, got ${JSON.stringify(r.errors)}`));
    ok.push(check(name, onB === 0, `node b created ${onB} allocations`));
    if (ok.every(Boolean)) {
      log(`ok   ${name}: node a answered ${sent300} Allocates with 300 Try Alternate ${alternate}; the browser did not ` +
        `follow (loopback alternate refused): icecandidateerror ${errors} x${r.errors.length}, no allocation on b`);
    }
  }
}

export async function redirectCase(page, { followsLoopback, prflxRemote = false }) {
  const name = 'redirect';
  const redisPort = await freePort();
  const portA = await freePort();
  const portB = await freePort();
  const metricsA = await freePort();
  const metricsB = await freePort();
  const redis = startRedis('redis', { port: redisPort, password: 'e2e-redis-password' });
  await redis.ready;
  const node = (nodeId, address, ports, metricsPort) => fleetNodeYaml({
    nodeId, listen: [address], advertise: [address], relayPorts: ports.join('-'), metricsPort,
    redisUrl: redis.url, allowPeers: ['127.0.0.0/8', '10.77.0.0/24'], grace: 120,
  });
  const addrA = `127.0.0.1:${portA}`;
  const loopB = `127.0.0.1:${portB}`;
  const vethB = `${VETH_ADDRESS}:${portB}`;
  const a = startTernd('fleet-a', node('a', addrA, FLEET_A_PORTS, metricsA));
  const b = startTernd('fleet-b', node('b', loopB, FLEET_B_PORTS, metricsB));
  await Promise.all([a.ready, b.ready]);
  const hget = (id, field) => redis.cli('HGET', `tern:node:${id}`, field);
  const registered = await until(() => hget('a', 'advertise') === addrA && hget('b', 'advertise') === loopB, 5000);
  if (!check(`${name}-setup`, registered,
    `registry: a ${redis.cli('HGETALL', 'tern:node:a')}, b ${redis.cli('HGETALL', 'tern:node:b')}`)) return;

  // The allocations that keep the drained node a up: a peer connection of its own on the page,
  // gathering relay candidates through a, open until the end of the case.
  const urlA = `turn:${addrA}?transport=udp`;
  const held = await page.evaluate(async (cfg) => {
    const pc = new RTCPeerConnection({ iceServers: cfg.iceServers, iceTransportPolicy: 'relay' });
    window.fleetHolder = pc;
    const relays = [];
    pc.onicecandidate = (e) => { if (e.candidate && e.candidate.candidate.includes(' typ relay ')) relays.push(e.candidate.candidate); };
    pc.createDataChannel('hold');
    await pc.setLocalDescription(await pc.createOffer());
    const end = performance.now() + 10000;
    while (relays.length === 0 && performance.now() < end) await new Promise((r) => setTimeout(r, 100));
    // The other interfaces' allocations, if any, a moment longer.
    await new Promise((r) => setTimeout(r, 500));
    return relays;
  }, { iceServers: [{ urls: urlA, ...restCredential('holder', 600) }] });
  try {
    const heldRelays = relayCandidates(held);
    if (!check(`${name}-setup`, heldRelays.length > 0 && heldRelays.every((c) => inRange(c.port, FLEET_A_PORTS)),
      `no allocation held on node a: ${JSON.stringify(held)}\na: ${a.output()}`)) return;

    // POST /drain as `ternctl drain` sends it; a then stays up for its allocations (grace 120 s).
    const drained = await drain(metricsA);
    const isDraining = await until(() => hget('a', 'draining') === '1', 5000);
    if (!check(`${name}-setup`, drained.status >= 200 && drained.status < 300 && isDraining && a.child.exitCode === null,
      `POST /drain: ${drained.status} ${drained.body}; registry draining=${hget('a', 'draining')}; a: ${a.output()}`)) return;
    // Node a reads the registry once a second: let it see itself draining and b there.
    await sleep(1500);
    log(`note ${name}: node a drained (POST /drain: ${drained.status} ${drained.body}) holding ` +
      `${heldRelays.length} relay candidate(s); b registered at ${hget('b', 'advertise')}`);

    await redirectRound(page, {
      name: `${name}-loopback`, urlA, alternate: loopB, metricsA, metricsB, follows: followsLoopback, prflxRemote,
    });

    // Node b again, on the veth address: stopped by its PID with SIGINT (at once, without a
    // drain: a browser that followed the first redirect may not have released its allocations
    // on b yet) and started with the new listen and advertise.
    const exited = new Promise((r) => { if (b.child.exitCode !== null) r(); else b.child.once('exit', r); });
    process.kill(b.child.pid, 'SIGINT');
    if (!check(`${name}-setup`, await Promise.race([exited.then(() => true), sleep(5000).then(() => false)]),
      `node b did not stop within 5 s of SIGINT:\n${b.output()}`)) return;
    const b2 = startTernd('fleet-b2', node('b', vethB, FLEET_B_PORTS, metricsB));
    await b2.ready;
    const moved = await until(() => hget('b', 'advertise') === vethB, 5000);
    if (!check(`${name}-setup`, moved, `b's advertise after the restart: ${hget('b', 'advertise')}\nb: ${b2.output()}`)) return;
    await sleep(1500);
    await redirectRound(page, { name, urlA, alternate: vethB, metricsA, metricsB, follows: true, prflxRemote });
  } finally {
    await page.evaluate(() => { if (window.fleetHolder) window.fleetHolder.close(); window.fleetHolder = null; });
  }
}

// ---------------------------------------------------------------------------------------------
// Checks and the run's outcome.

const failures = [];
export function check(name, condition, detail) {
  if (condition) return true;
  failures.push(`${name}: ${detail}`);
  log(`FAIL ${name}: ${detail}`);
  return false;
}

export function checkOperatorRows(rows) {
  return check('operator-page', rows.length === 3 && rows.every((r) => r[1] === 'relayed'),
    `relay-check.html reported ${JSON.stringify(rows)}`);
}

// The browser's side of a relayed call: connected, a relay/relay pair on both ends over the
// expected transport and family, the data channel intact both ways, video and audio flowing.
// Returns one boolean per check. With `prflxRemote`, a peer-reflexive remote candidate counts as
// a relay when the other end's selected local candidate is one (see e2e-firefox.mjs); the failure
// then shows both pairs, since the verdict on one rests on the other.
export function checkRelayCall(name, r, expectProtocol, expectIpv6, { prflxRemote = false } = {}) {
  const ok = [];
  ok.push(check(name, r.connected, `not connected (states ${r.states}, errors ${JSON.stringify(r.errors)})`));
  if (r.connected) {
    for (const [i, side] of ['caller', 'callee'].entries()) {
      const p = r.pairs[i];
      const other = r.pairs[1 - i];
      const remoteIsRelay = p && (p.remoteType === 'relay' ||
        (prflxRemote && p.remoteType === 'prflx' && other && other.localType === 'relay'));
      ok.push(check(name, p && p.localType === 'relay' && remoteIsRelay,
        `${side} selected pair is not relay/relay: ${JSON.stringify(prflxRemote ? r.pairs : p)}`));
      ok.push(check(name, p && p.relayProtocol === expectProtocol,
        `${side} relayProtocol ${p && p.relayProtocol}, expected ${expectProtocol}`));
      ok.push(check(name, p && p.localAddress && p.localAddress.includes(':') === expectIpv6,
        `${side} relayed address ${p && p.localAddress} is not ${expectIpv6 ? 'IPv6' : 'IPv4'}`));
    }
    for (const dir of ['forward', 'backward']) {
      const d = r[dir];
      ok.push(check(name, d && d.received === d.sent && d.intact,
        `data channel ${dir}: ${JSON.stringify(d)}`));
    }
    const m = r.media;
    ok.push(check(name, m && m.after.videoBytes > m.before.videoBytes && m.after.framesDecoded > m.before.framesDecoded,
      `video did not flow: ${JSON.stringify(m)}`));
    ok.push(check(name, m && m.after.audioBytes > m.before.audioBytes, `audio did not flow: ${JSON.stringify(m)}`));
  }
  return ok;
}

// What flowed in a call that passed checkRelayCall, for its "ok" line.
export function flowSummary(r) {
  return `${r.forward.sent}+${r.backward.sent} messages intact, ` +
    `video frames ${r.media.before.framesDecoded}->${r.media.after.framesDecoded}, audio bytes ${r.media.before.audioBytes}->${r.media.after.audioBytes}`;
}

// Runs `main` under an overall deadline, then stops ternd, removes the work directory, prints the
// verdict (`passed`, or the failures) and exits 0 only if every check passed.
export async function run(main, { name, deadlineSeconds, passed }) {
  const deadline = setTimeout(() => {
    console.error(`${name}: overall deadline (${deadlineSeconds} s) reached`);
    killChildren();
    process.exit(1);
  }, deadlineSeconds * 1000);

  try {
    await main();
  } catch (e) {
    failures.push(`harness: ${e.stack || e}`);
    console.error(e);
  } finally {
    clearTimeout(deadline);
    killChildren();
    rmSync(work, { recursive: true, force: true });
  }
  log(failures.length === 0 ? passed : `${failures.length} failure(s):\n  ${failures.join('\n  ')}`);
  process.exit(failures.length === 0 ? 0 : 1);
}
