// tern's browser end-to-end test: a real ternd and Debian's headless Chromium, two
// RTCPeerConnections relayed through ternd (iceTransportPolicy 'relay') over UDP, TCP, TLS and
// IPv6, with a data channel and synthetic audio/video; plus the refusals and a STUN-only check.
// Run by run-e2e.sh inside a fresh network namespace (loopback only). Exit 0 = every case passed.
//
//   node e2e.mjs --ternd PATH [--chromium /usr/bin/chromium] [--only NAME]

import { chromium } from 'playwright-core';
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
const chromiumPath = args.chromium || '/usr/bin/chromium';
if (!terndPath) {
  console.error('usage: node e2e.mjs --ternd PATH [--chromium PATH] [--only CASE]');
  process.exit(2);
}

const secret = 'e2e-shared-secret';
const realm = 'e2e.tern.test';
const started = Date.now();
const children = [];
const work = mkdtempSync(path.join(tmpdir(), 'tern-e2e-'));

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
// A certificate for `localhost` signed by a throw-away CA that only this run's Chromium trusts.

function makeCertificates() {
  const dir = path.join(work, 'pki');
  mkdirSync(dir, { recursive: true });
  const f = (n) => path.join(dir, n);
  const openssl = (...a) => execFileSync('openssl', a, { stdio: 'pipe' });
  openssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
    '-keyout', f('ca.key'), '-out', f('ca.pem'), '-days', '2', '-subj', '/CN=tern e2e CA',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign');
  openssl('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
    '-keyout', f('server.key'), '-out', f('server.csr'), '-subj', '/CN=localhost');
  writeFileSync(f('ext.cnf'),
    'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n' +
    'subjectAltName=DNS:localhost,IP:127.0.0.1\n');
  openssl('x509', '-req', '-in', f('server.csr'), '-CA', f('ca.pem'), '-CAkey', f('ca.key'),
    '-CAcreateserial', '-days', '2', '-extfile', f('ext.cnf'), '-out', f('server.pem'));
  // Chromium on Linux reads trust anchors from $HOME/.pki/nssdb.
  const home = path.join(work, 'home');
  const nssdb = path.join(home, '.pki', 'nssdb');
  mkdirSync(nssdb, { recursive: true });
  execFileSync('certutil', ['-N', '-d', `sql:${nssdb}`, '--empty-password'], { stdio: 'pipe' });
  execFileSync('certutil', ['-A', '-d', `sql:${nssdb}`, '-n', 'tern-e2e-ca', '-t', 'C,,', '-i', f('ca.pem')],
    { stdio: 'pipe' });
  return { cert: f('server.pem'), key: f('server.key'), home };
}

function terndYaml({ port, tlsPort, pki, allowLoopback }) {
  return [
    `realm: ${realm}`,
    'threads: 2',
    `listen: [ "udp://127.0.0.1:${port}", "tcp://127.0.0.1:${port}", "tls://127.0.0.1:${tlsPort}",`,
    `          "udp://[::1]:${port}", "tcp://[::1]:${port}" ]`,
    `tls: { certificate: ${pki.cert}, private_key: ${pki.key} }`,
    'auth:',
    `  secrets: [ "${secret}" ]`,
    'relay:',
    '  default_family: client',
    allowLoopback ? '  allow_peers: [ 127.0.0.0/8, "::1" ]' : '',
    'limits: { shutdown_grace: 0 }',
    'log: { level: info }',
    '',
  ].join('\n');
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

async function relayCase(page, name, urls, expectProtocol, expectIpv6 = false) {
  const cred = restCredential('alice', 600);
  const r = await page.evaluate((cfg) => window.relayCall(cfg), {
    iceServers: [{ urls, ...cred }], timeoutMs: 20000, messages: 300, media: true,
  });
  const ok = [];
  ok.push(check(name, r.connected, `not connected (states ${r.states}, errors ${JSON.stringify(r.errors)})`));
  if (r.connected) {
    for (const [i, side] of ['caller', 'callee'].entries()) {
      const p = r.pairs[i];
      ok.push(check(name, p && p.localType === 'relay' && p.remoteType === 'relay',
        `${side} selected pair is not relay/relay: ${JSON.stringify(p)}`));
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
  if (ok.every(Boolean)) {
    log(`ok   ${name}: relay/relay over ${expectProtocol} (${r.pairs[0].localAddress}), ${r.forward.sent}+${r.backward.sent} messages intact, ` +
      `video frames ${r.media.before.framesDecoded}->${r.media.after.framesDecoded}, audio bytes ${r.media.before.audioBytes}->${r.media.after.audioBytes}`);
  }
}

async function refusedCase(page, name, urls, cred, expectCode) {
  const r = await page.evaluate((cfg) => window.relayCall(cfg), {
    iceServers: [{ urls, ...cred }], timeoutMs: 8000, messages: 0, media: false,
  });
  const codes = r.errors.map((e) => e.code);
  const a = check(name, !r.connected, `connected although it must not (states ${r.states})`);
  const b = expectCode === null || check(name, codes.includes(expectCode),
    `expected icecandidateerror ${expectCode}, got ${JSON.stringify(r.errors)}`);
  if (a && b) log(`ok   ${name}: not connected${expectCode ? `, icecandidateerror ${expectCode}` : ''}`);
  return r;
}

async function main() {
  const version = execFileSync(chromiumPath, ['--version']).toString().trim();
  log(`browser: ${version}`);
  const pki = makeCertificates();
  const port = await freePort();
  const tlsPort = await freePort();
  const strictPort = await freePort();
  const strictTlsPort = await freePort();
  const tern = startTernd('allow-loopback', terndYaml({ port, tlsPort, pki, allowLoopback: true }));
  const strict = startTernd('default-peers', terndYaml({ port: strictPort, tlsPort: strictTlsPort, pki, allowLoopback: false }));
  await Promise.all([tern.ready, strict.ready]);

  // The operator's relay-check page is the page under test, so both stay one piece of code.
  const pageHtml = readFileSync(path.join(here, '..', '..', 'docs', 'relay-check.html'));
  const http = createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'text/html' });
    res.end(pageHtml);
  });
  await new Promise((r) => http.listen(0, '127.0.0.1', r));
  const pageUrl = `http://127.0.0.1:${http.address().port}/`;

  const browser = await chromium.launch({
    executablePath: chromiumPath,
    headless: true,
    env: { ...process.env, HOME: pki.home },
    args: [
      '--allow-loopback-in-peer-connection',
      '--disable-features=WebRtcHideLocalIpsWithMdns',
      '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1',
      '--autoplay-policy=no-user-gesture-required',
      '--use-fake-ui-for-media-stream',
    ],
  });
  try {
    const page = await browser.newPage();
    page.on('console', (m) => { if (m.type() === 'error') log(`page: ${m.text()}`); });
    await page.goto(pageUrl);
    const only = args.only;
    const want = (n) => !only || n.includes(only);

    if (want('udp')) await relayCase(page, 'udp', `turn:127.0.0.1:${port}?transport=udp`, 'udp');
    if (want('tcp')) await relayCase(page, 'tcp', `turn:127.0.0.1:${port}?transport=tcp`, 'tcp');
    if (want('tls')) await relayCase(page, 'tls', `turns:localhost:${tlsPort}?transport=tcp`, 'tls');
    if (want('ipv6')) await relayCase(page, 'ipv6-udp', `turn:[::1]:${port}?transport=udp`, 'udp', true);

    if (want('operator')) {
      // The form an operator uses against a deployment, filled in and submitted like a person.
      const cred = restCredential('operator', 600);
      await page.fill('input[name=host]', '127.0.0.1');
      await page.fill('input[name=port]', String(port));
      await page.fill('input[name=tlsPort]', String(tlsPort));
      await page.fill('input[name=username]', cred.username);
      await page.fill('input[name=credential]', cred.credential);
      await page.click('button');
      await page.waitForFunction(() => {
        const cells = [...document.querySelectorAll('#results td:nth-child(2)')];
        return cells.length === 3 && cells.every((c) => c.textContent !== 'running…');
      }, null, { timeout: 90000 });
      const rows = await page.$$eval('#results tr', (trs) => trs.slice(1).map((tr) => [...tr.cells].map((c) => c.textContent)));
      if (check('operator-page', rows.length === 3 && rows.every((r) => r[1] === 'relayed'),
        `relay-check.html reported ${JSON.stringify(rows)}`)) {
        log(`ok   operator-page: ${rows.map((r) => `${r[0]} ${r[1]}`).join(', ')}`);
      }
    }

    if (want('refused')) {
      const wrong = restCredential('alice', 600, 'not-the-secret');
      await refusedCase(page, 'wrong-secret', `turn:127.0.0.1:${port}?transport=udp`, wrong, 401);
      const expired = restCredential('alice', -60);
      await refusedCase(page, 'expired-username', `turn:127.0.0.1:${port}?transport=udp`, expired, 401);
      // The default peer policy refuses loopback peers: allocations succeed, permissions get
      // 403, so the same call cannot connect.
      const r = await refusedCase(page, 'default-config-loopback-peer',
        `turn:127.0.0.1:${strictPort}?transport=udp`, restCredential('alice', 600), null);
      check('default-config-loopback-peer', r.candidates.some((c) => c.includes(' typ relay ')),
        `no relay candidate was gathered, so the refusal proves nothing: ${JSON.stringify(r)}`);
    }

    if (want('stun')) {
      // Chromium drops a server-reflexive candidate equal to its host candidate, and nothing on
      // loopback is NATed. So the namespace NATs this one server's STUN port (source rewritten
      // to 10.77.0.2, ports 40000-40999), the way a home router would.
      const nft = (...a) => execFileSync('nft', a, { stdio: 'pipe' });
      nft('add', 'table', 'ip', 'tern_e2e');
      nft('add', 'chain', 'ip', 'tern_e2e', 'post', '{ type nat hook postrouting priority 100 ; }');
      nft('add', 'rule', 'ip', 'tern_e2e', 'post', 'udp', 'dport', String(strictPort),
        'snat', 'to', '10.77.0.2:40000-40999');
      const r = await page.evaluate((cfg) => window.gatherSrflx(cfg), {
        iceServers: [{ urls: `stun:127.0.0.1:${strictPort}` }], timeoutMs: 10000,
      });
      const natted = r.found.filter((c) => c.address === '10.77.0.2' && c.port >= 40000 && c.port <= 40999);
      if (check('stun-only', natted.length > 0,
        `no srflx candidate with the NAT's address (10.77.0.2:40000-40999): ${JSON.stringify(r)}`)) {
        log(`ok   stun-only: srflx ${JSON.stringify(natted)} as ternd reported it through the NAT`);
      }
    }
  } finally {
    await browser.close();
    http.close();
  }
}

const deadline = setTimeout(() => {
  console.error('e2e: overall deadline (170 s) reached');
  killChildren();
  process.exit(1);
}, 170000);

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
log(failures.length === 0 ? 'all e2e cases passed' : `${failures.length} failure(s):\n  ${failures.join('\n  ')}`);
process.exit(failures.length === 0 ? 0 : 1);
