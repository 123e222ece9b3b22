// tern's browser end-to-end test, Firefox edition: a real ternd and Debian's headless Firefox ESR,
// driven over its built-in WebDriver BiDi by puppeteer-core (Debian ships no geckodriver, and
// nothing is downloaded). Two RTCPeerConnections relayed through ternd (iceTransportPolicy
// 'relay') over turn: UDP, turn: TCP and turns: (TLS, by host name), on IPv4 and IPv6, with a data
// channel and synthetic audio/video; plus the operator's form and refused credentials. Firefox's ICE/TURN stack (nICEr)
// shares no code with Chromium's, so this is a second, independent client.
// Run by run-e2e.sh --browser firefox inside a fresh network namespace whose /etc/hosts maps the
// TLS host names below to loopback. Exit 0 = every case passed.
//
//   node e2e-firefox.mjs --ternd PATH [--firefox /usr/bin/firefox-esr] [--only NAME]
//                        [--secret S]   (ternd's secret; a different one must make the run fail)

import puppeteer from 'puppeteer-core';
import { execFileSync, spawn } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync, mkdirSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const args = Object.fromEntries(
  process.argv.slice(2).reduce((pairs, a, i, all) => (a.startsWith('--') ? [...pairs, [a.slice(2), all[i + 1]]] : pairs), []));
const terndPath = args.ternd;
const firefoxPath = args.firefox || '/usr/bin/firefox-esr';
if (!terndPath) {
  console.error('usage: node e2e-firefox.mjs --ternd PATH [--firefox PATH] [--only CASE] [--secret S]');
  process.exit(2);
}

const secret = 'e2e-shared-secret';
// What ternd is configured with; only differs when showing that the test can fail.
const terndSecret = args.secret || secret;
const realm = 'e2e.tern.test';
// run-e2e.sh maps these in the namespace's /etc/hosts: one name per family, so each turns: case
// reaches ternd over exactly one of them. Firefox refuses turns: with an IP address. The IPv6 one
// is the namespace's veth address, not ::1: glibc answers an IPv4 lookup of a name listed as ::1
// with 127.0.0.1, and Firefox (resolving per local address family) would then reach ternd over
// IPv4 as well.
const tlsName4 = 'turn4.e2e.tern.test';
const tlsName6 = 'turn6.e2e.tern.test';
const tlsAddress6 = 'fd00:77::1';
const started = Date.now();
const children = [];
const work = mkdtempSync(path.join(tmpdir(), 'tern-e2e-ff-'));

function log(...parts) {
  console.log(`[${((Date.now() - started) / 1000).toFixed(1)}s]`, ...parts);
}

// ---------------------------------------------------------------------------------------------
// Credentials, as a backend mints them (docs/credentials.md).

function restCredential(user, ttlSeconds, key = secret) {
  const username = `${Math.floor(Date.now() / 1000) + ttlSeconds}:${user}`;
  const credential = createHmac('sha1', key).update(username).digest('base64');
  return { username, credential };
}

// ---------------------------------------------------------------------------------------------
// Processes and ports. Every child is killed by its own PID on exit, and only those.

async function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

function startTernd(name, yaml) {
  const dir = path.join(work, name);
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
    const check = () => {
      if (output.includes('is listening on')) { clearTimeout(timer); resolve(); }
    };
    child.stdout.on('data', check);
    child.stderr.on('data', check);
    child.on('exit', (code) => { clearTimeout(timer); reject(new Error(`${name}: ternd exited ${code}:\n${output}`)); });
  });
  return { child, ready, output: () => output };
}

function killChildren() {
  for (const c of children) {
    if (c.exitCode === null && c.signalCode === null) {
      try { process.kill(c.pid, 'SIGTERM'); } catch { /* already gone */ }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// A certificate for the two TLS host names, signed by a throw-away CA that only this run's
// Firefox profile trusts (certutil into the profile's own NSS database).

function makeCertificates(profile) {
  const dir = path.join(work, 'pki');
  mkdirSync(dir, { recursive: true });
  const f = (n) => path.join(dir, n);
  const openssl = (...a) => execFileSync('openssl', a, { stdio: 'pipe' });
  openssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
    '-keyout', f('ca.key'), '-out', f('ca.pem'), '-days', '2', '-subj', '/CN=tern e2e firefox CA',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign');
  openssl('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
    '-keyout', f('server.key'), '-out', f('server.csr'), '-subj', `/CN=${tlsName4}`);
  writeFileSync(f('ext.cnf'),
    'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n' +
    `subjectAltName=DNS:${tlsName4},DNS:${tlsName6}\n`);
  openssl('x509', '-req', '-in', f('server.csr'), '-CA', f('ca.pem'), '-CAkey', f('ca.key'),
    '-CAcreateserial', '-days', '2', '-extfile', f('ext.cnf'), '-out', f('server.pem'));
  mkdirSync(profile, { recursive: true });
  execFileSync('certutil', ['-N', '-d', `sql:${profile}`, '--empty-password'], { stdio: 'pipe' });
  execFileSync('certutil', ['-A', '-d', `sql:${profile}`, '-n', 'tern-e2e-ca', '-t', 'C,,', '-i', f('ca.pem')],
    { stdio: 'pipe' });
  return { cert: f('server.pem'), key: f('server.key') };
}

function terndYaml({ port, tlsPort, metricsPort, pki }) {
  return [
    `realm: ${realm}`,
    'threads: 2',
    `listen: [ "udp://127.0.0.1:${port}", "tcp://127.0.0.1:${port}", "tls://127.0.0.1:${tlsPort}",`,
    `          "udp://[::1]:${port}", "tcp://[::1]:${port}", "tls://[${tlsAddress6}]:${tlsPort}" ]`,
    `tls: { certificate: ${pki.cert}, private_key: ${pki.key} }`,
    'auth:',
    `  secrets: [ "${terndSecret}" ]`,
    'relay:',
    '  default_family: client',
    `  allow_peers: [ 127.0.0.0/8, "::1", "${tlsAddress6}" ]`,
    `metrics: { listen: "127.0.0.1:${metricsPort}" }`,
    'limits: { shutdown_grace: 0 }',
    'log: { level: info }',
    '',
  ].join('\n');
}

// ---------------------------------------------------------------------------------------------
// ternd's Prometheus metrics: what the server saw, next to what the browser reports.

async function scrape(metricsPort) {
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
function delta(before, after, series) {
  return (after.get(series) || 0) - (before.get(series) || 0);
}

// Every request series that moved between two scrapes, but the normal 200s and 401 challenges.
function unusualAnswers(before, after) {
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
function answered(before, after) {
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
// The cases.

const failures = [];
function check(name, condition, detail) {
  if (condition) return true;
  failures.push(`${name}: ${detail}`);
  log(`FAIL ${name}: ${detail}`);
  return false;
}

async function relayCase(ctx, name, urls, expectProtocol, expectIpv6) {
  const { page, metricsPort } = ctx;
  const cred = restCredential('alice', 600);
  const before = await scrape(metricsPort);
  const r = await page.evaluate((cfg) => window.relayCall(cfg), {
    iceServers: [{ urls, ...cred }], timeoutMs: 15000, messages: 300, media: true,
  });
  const after = await scrape(metricsPort);
  const ok = [];
  ok.push(check(name, r.connected, `not connected (states ${r.states}, errors ${JSON.stringify(r.errors)})`));
  if (r.connected) {
    for (const [i, side] of ['caller', 'callee'].entries()) {
      const p = r.pairs[i];
      const other = r.pairs[1 - i];
      // A connectivity check can beat the trickled candidate it comes from, and Firefox then
      // keeps calling that remote candidate peer-reflexive. Both ends see the same selected pair,
      // so a prflx remote is the other end's local candidate, which must be a relay.
      const remoteIsRelay = p && (p.remoteType === 'relay' ||
        (p.remoteType === 'prflx' && other && other.localType === 'relay'));
      ok.push(check(name, p && p.localType === 'relay' && remoteIsRelay,
        `${side} selected pair is not relay/relay: ${JSON.stringify(r.pairs)}`));
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
  // The server's side of the same call: both peers allocated over the transport and family
  // asked for, and packets went both ways through the relay.
  const family = expectIpv6 ? 'ipv6' : 'ipv4';
  const allocated = delta(before, after, `tern_allocations_created_total{transport="${expectProtocol}",family="${family}"}`);
  ok.push(check(name, allocated >= 2, `ternd created ${allocated} ${expectProtocol}/${family} allocations, expected >= 2`));
  const toPeer = delta(before, after, 'tern_relayed_packets_total{direction="to_peer"}');
  const toClient = delta(before, after, 'tern_relayed_packets_total{direction="to_client"}');
  ok.push(check(name, toPeer > 0 && toClient > 0, `ternd relayed ${toPeer} packets to peers, ${toClient} to clients`));
  const unusual = unusualAnswers(before, after);
  ok.push(check(name, delta(before, after, 'tern_stun_dropped_total{reason="malformed"}') === 0,
    `ternd dropped malformed STUN from Firefox: ${unusual.join(', ')}`));
  if (unusual.length) log(`note ${name}: ternd answered or dropped: ${unusual.join(', ')}`);
  if (ok.every(Boolean)) {
    log(`ok   ${name}: ${r.pairs.map((p) => `${p.localType}/${p.remoteType}`).join(' ')} over ${expectProtocol} (${r.pairs[0].localAddress}), ${r.forward.sent}+${r.backward.sent} messages intact, ` +
      `video frames ${r.media.before.framesDecoded}->${r.media.after.framesDecoded}, audio bytes ${r.media.before.audioBytes}->${r.media.after.audioBytes}; ` +
      `ternd: ${allocated} ${expectProtocol}/${family} allocations, ${toPeer}/${toClient} packets relayed, requests ${answered(before, after)}`);
  }
}

async function refusedCase(ctx, name, urls, cred, reason) {
  const { page, metricsPort } = ctx;
  const before = await scrape(metricsPort);
  const r = await page.evaluate((cfg) => window.relayCall(cfg), {
    iceServers: [{ urls, ...cred }], timeoutMs: 6000, messages: 0, media: false,
  });
  const after = await scrape(metricsPort);
  const relayCandidates = r.candidates.filter((c) => c.includes(' typ relay '));
  const refusals = delta(before, after, `tern_auth_failures_total{reason="${reason}"}`);
  const a = check(name, !r.connected, `connected although it must not (states ${r.states})`);
  const b = check(name, relayCandidates.length === 0, `relay candidates gathered: ${JSON.stringify(relayCandidates)}`);
  const c = check(name, refusals > 0, `ternd counted no auth failure "${reason}"`);
  const codes = r.errors.map((e) => e.code);
  // Firefox reports the refused Allocate as icecandidateerror 401, as Chromium does, and nothing
  // else (701 would mean it never reached ternd).
  const d = check(name, codes.includes(401) && codes.every((x) => x === 401),
    `expected icecandidateerror 401 only, got ${JSON.stringify(r.errors)}`);
  if (a && b && c && d) {
    log(`ok   ${name}: not connected, no relay candidate, ternd counted ${refusals} "${reason}" refusals, ` +
      `icecandidateerror ${[...new Set(codes)].join(',')}; requests ${answered(before, after)}`);
  }
}

function firefoxPrefs() {
  return {
    // WebRTC in an unattended page: no permission prompt, fake devices, autoplay allowed.
    'media.navigator.permission.disabled': true,
    'media.navigator.streams.fake': true,
    'media.autoplay.default': 0,
    'media.autoplay.block-webaudio': false,
    'media.autoplay.blocking_policy': 0,
    // ICE as the test needs it: everything here is on loopback or a private veth, and the host
    // addresses are not hidden behind mDNS names.
    'media.peerconnection.ice.loopback': true,
    'media.peerconnection.ice.obfuscate_host_addresses': false,
    'media.peerconnection.ice.default_address_only': false,
    'media.peerconnection.ice.no_host': false,
    'media.peerconnection.ice.tcp': true,
    'network.dns.disableIPv6': false,
    // Host names come from /etc/hosts (the namespace's), never from DNS over HTTPS.
    'network.trr.mode': 5,
    'network.dns.disablePrefetch': true,
    // No outside connections: there is no route out of the namespace anyway, but nothing should
    // even try (updates, telemetry, remote settings, captive portal and connectivity checks).
    'app.update.enabled': false,
    'app.update.auto': false,
    'datareporting.policy.dataSubmissionEnabled': false,
    'datareporting.healthreport.uploadEnabled': false,
    'toolkit.telemetry.enabled': false,
    'toolkit.telemetry.unified': false,
    'toolkit.telemetry.server': '',
    'network.captive-portal-service.enabled': false,
    'network.connectivity-service.enabled': false,
    'browser.safebrowsing.update.enabled': false,
    'services.settings.server': 'http://127.0.0.1:1/',
    'extensions.getAddons.cache.enabled': false,
    'browser.region.network.url': '',
    'browser.region.update.enabled': false,
    'media.gmp-manager.url': '',
    'media.gmp-gmpopenh264.enabled': false,
    'network.predictor.enabled': false,
    'browser.shell.checkDefaultBrowser': false,
  };
}

async function main() {
  const version = execFileSync(firefoxPath, ['--version'], { env: { ...process.env, MOZ_HEADLESS: '1' } }).toString().trim();
  log(`browser: ${version}; driver: puppeteer-core ${JSON.parse(readFileSync(path.join(here, 'node_modules', 'puppeteer-core', 'package.json'))).version} over WebDriver BiDi`);
  const profile = path.join(work, 'profile');
  const pki = makeCertificates(profile);
  const port = await freePort();
  const tlsPort = await freePort();
  const metricsPort = await freePort();
  const tern = startTernd('ternd', terndYaml({ port, tlsPort, metricsPort, pki }));
  await tern.ready;
  log(`ternd ready: udp/tcp ${port}, tls ${tlsPort}, metrics ${metricsPort}`);

  // The operator's relay-check page is the page under test, as in the Chromium test.
  const pageHtml = readFileSync(path.join(here, '..', '..', 'docs', 'relay-check.html'));
  const http = createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'text/html' });
    res.end(pageHtml);
  });
  await new Promise((r) => http.listen(0, '127.0.0.1', r));
  const pageUrl = `http://127.0.0.1:${http.address().port}/`;

  const home = path.join(work, 'home');
  mkdirSync(home, { recursive: true });
  const browser = await puppeteer.launch({
    browser: 'firefox',
    protocol: 'webDriverBiDi',
    executablePath: firefoxPath,
    headless: true,
    userDataDir: profile,
    extraPrefsFirefox: firefoxPrefs(),
    env: { ...process.env, HOME: home, MOZ_HEADLESS: '1' },
    timeout: 30000,
    protocolTimeout: 90000,
  });
  log(`firefox started (profile ${profile})`);
  try {
    const page = await browser.newPage();
    page.on('console', (m) => { if (m.type() === 'error') log(`page: ${m.text()}`); });
    await page.goto(pageUrl, { timeout: 15000 });
    const ctx = { page, metricsPort };
    const only = args.only;
    const want = (n) => !only || n.includes(only);

    if (want('udp4')) await relayCase(ctx, 'udp4', `turn:127.0.0.1:${port}?transport=udp`, 'udp', false);
    if (want('tcp4')) await relayCase(ctx, 'tcp4', `turn:127.0.0.1:${port}?transport=tcp`, 'tcp', false);
    if (want('tls4')) await relayCase(ctx, 'tls4', `turns:${tlsName4}:${tlsPort}?transport=tcp`, 'tls', false);
    if (want('udp6')) await relayCase(ctx, 'udp6', `turn:[::1]:${port}?transport=udp`, 'udp', true);
    if (want('tcp6')) await relayCase(ctx, 'tcp6', `turn:[::1]:${port}?transport=tcp`, 'tcp', true);
    if (want('tls6')) await relayCase(ctx, 'tls6', `turns:${tlsName6}:${tlsPort}?transport=tcp`, 'tls', true);

    if (want('operator')) {
      // The operator's form, filled in and submitted like a person, with the host name the
      // certificate has (Firefox needs it for turns:; the turn: URLs resolve it too).
      const cred = restCredential('operator', 600);
      for (const [field, value] of [['host', tlsName4], ['port', String(port)], ['tlsPort', String(tlsPort)],
        ['username', cred.username], ['credential', cred.credential]]) {
        await page.locator(`input[name=${field}]`).setTimeout(5000).fill(value);
      }
      await page.locator('button').setTimeout(5000).click();
      await page.waitForFunction(() => {
        const cells = [...document.querySelectorAll('#results td:nth-child(2)')];
        return cells.length === 3 && cells.every((c) => c.textContent !== 'running…');
      }, { timeout: 60000, polling: 250 });
      const rows = await page.$$eval('#results tr', (trs) => trs.slice(1).map((tr) => [...tr.cells].map((c) => c.textContent)));
      if (check('operator-page', rows.length === 3 && rows.every((r) => r[1] === 'relayed'),
        `relay-check.html reported ${JSON.stringify(rows)}`)) {
        log(`ok   operator-page: ${rows.map((r) => `${r[0]} ${r[1]} (${r[2]})`).join('; ')}`);
      }
    }

    if (want('refused')) {
      await refusedCase(ctx, 'wrong-secret', `turn:127.0.0.1:${port}?transport=udp`,
        restCredential('alice', 600, 'not-the-secret'), 'integrity_mismatch');
      await refusedCase(ctx, 'expired-username', `turn:127.0.0.1:${port}?transport=udp`,
        restCredential('alice', -60), 'credential_expired');
    }
  } finally {
    await browser.close();
    http.close();
  }
}

const deadline = setTimeout(() => {
  console.error('e2e-firefox: overall deadline (140 s) reached');
  killChildren();
  process.exit(1);
}, 140000);

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
log(failures.length === 0 ? 'all Firefox e2e cases passed' : `${failures.length} failure(s):\n  ${failures.join('\n  ')}`);
process.exit(failures.length === 0 ? 0 : 1);
