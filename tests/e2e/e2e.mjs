// tern's browser end-to-end test: a real ternd and Debian's headless Chromium, two
// RTCPeerConnections relayed through ternd (iceTransportPolicy 'relay') over UDP, TCP, TLS and
// IPv6, with a data channel and synthetic audio/video; plus the refusals, a STUN-only check, the
// operator's page filled in both ways (its form, and pasted iceServers JSON from ternctl), and
// the shared port (edge.fallback): the page itself loaded from nginx through ternd's TLS port,
// and relayed through that same port; and a fleet's 300 Try Alternate from a drained node
// (redirectCase in harness.mjs, with a Redis and two ternd of its own).
// Run by run-e2e.sh inside a fresh network namespace (loopback only). Exit 0 = every case passed.
// What is not Chromium's own is in harness.mjs, shared with e2e-firefox.mjs.
//
//   node e2e.mjs --ternd PATH [--ternctl PATH] [--chromium /usr/bin/chromium] [--only NAME]
//
// --ternctl defaults to ctl/ternctl beside ternd's server/ in the same build tree.

import { chromium } from 'playwright-core';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import {
  check, checkOperatorRows, checkRelayCall, delta, flowSummary, freePort, here, init, log, logPageErrors,
  makeCertificates, operatorFields, operatorPageDone, redirectCase, relayCall, restCredential, resultRows, run, scrape,
  secret, servePage, startNginx, startTernd, terndYaml, wanted, workPath,
} from './harness.mjs';

const args = init({
  usage: 'usage: node e2e.mjs --ternd PATH [--ternctl PATH] [--chromium PATH] [--only CASE]',
  workPrefix: 'tern-e2e-',
});
const chromiumPath = args.chromium || '/usr/bin/chromium';

// ---------------------------------------------------------------------------------------------
// The cases.

async function relayCase(page, name, urls, expectProtocol, expectIpv6 = false) {
  const cred = restCredential('alice', 600);
  const r = await relayCall(page, urls, cred, { timeoutMs: 20000, messages: 300, media: true });
  const ok = checkRelayCall(name, r, expectProtocol, expectIpv6);
  if (ok.every(Boolean)) {
    log(`ok   ${name}: relay/relay over ${expectProtocol} (${r.pairs[0].localAddress}), ${flowSummary(r)}`);
  }
}

// relay.kernel_fast_path: on (the XDP program on the namespace's lo): the same call over UDP, and
// the program, not ternd's sockets, carried most of its packets both ways.
async function kernelFastPathCase(page, pki) {
  const port = await freePort();
  const tlsPort = await freePort();
  const metricsPort = await freePort();
  const t = startTernd('kernel-fast-path', terndYaml({
    port, tlsPort, pki, metricsPort, allowPeers: ['127.0.0.0/8', '"::1"'], kernelFastPath: 'on',
  }));
  await t.ready;
  try {
    if (!check('kernel-fast-path', t.output().includes('kernel fast path: XDP'),
      `ternd did not attach the program: ${t.output()}`)) return;
    const before = await scrape(metricsPort);
    const cred = restCredential('alice', 600);
    const r = await relayCall(page, `turn:127.0.0.1:${port}?transport=udp`, cred,
      { timeoutMs: 20000, messages: 300, media: true });
    const ok = checkRelayCall('kernel-fast-path', r, 'udp', false);
    const after = await scrape(metricsPort);
    const series = (d) => `tern_kernel_fast_path_packets_total{direction="${d}"}`;
    const all = (d) => `tern_relayed_packets_total{direction="${d}"}`;
    const kernel = { to_peer: delta(before, after, series('to_peer')), to_client: delta(before, after, series('to_client')) };
    const total = { to_peer: delta(before, after, all('to_peer')), to_client: delta(before, after, all('to_client')) };
    // Media flows for seconds: all but a flow's first datagrams (until the way back is known)
    // and whatever Chromium sends before its ChannelBind is answered. Runs have put 65-99.9 % of
    // a direction in the kernel; most of it is the claim.
    const mostly = (d) => kernel[d] >= 100 && kernel[d] >= total[d] * 0.5;
    if (ok.every(Boolean) &&
      check('kernel-fast-path', mostly('to_peer') && mostly('to_client'),
        `kernel ${JSON.stringify(kernel)} of relayed ${JSON.stringify(total)}`)) {
      log(`ok   kernel-fast-path: ${flowSummary(r)}; in the kernel ${kernel.to_peer} of ` +
        `${total.to_peer} to peers, ${kernel.to_client} of ${total.to_client} to clients`);
    }
  } finally {
    t.child.kill('SIGTERM');
  }
}

async function refusedCase(page, name, urls, cred, expectCode) {
  const r = await relayCall(page, urls, cred, { timeoutMs: 8000, messages: 0, media: false });
  const codes = r.errors.map((e) => e.code);
  const a = check(name, !r.connected, `connected although it must not (states ${r.states})`);
  const b = expectCode === null || check(name, codes.includes(expectCode),
    `expected icecandidateerror ${expectCode}, got ${JSON.stringify(r.errors)}`);
  if (a && b) log(`ok   ${name}: not connected${expectCode ? `, icecandidateerror ${expectCode}` : ''}`);
  return r;
}

// The iceServers entry an operator pastes into relay-check.html: what `ternctl credential --uri
// ... --json` prints, minted from the test's secret on standard input, so a change of ternctl's
// output that the page cannot read fails here. Without a ternctl binary, the same object is made
// here (and the log says so).
function ternctlIceServer(urls) {
  const ternctl = args.ternctl || path.join(path.dirname(args.ternd), '..', 'ctl', 'ternctl');
  if (existsSync(ternctl)) {
    return execFileSync(ternctl, ['credential', '--secret', '-', '--user', 'pasted', '--ttl', '600',
      ...urls.flatMap((u) => ['--uri', u]), '--json'], { input: `${secret}\n`, stdio: ['pipe', 'pipe', 'pipe'] })
      .toString();
  }
  log(`note pasted-ice-servers: no ternctl at ${ternctl} (--ternctl PATH); pasting an object made by the test`);
  return `${JSON.stringify({ urls, ...restCredential('pasted', 600), ttl: 600 })}\n`;
}

// relay-check.html with pasted iceServers instead of its form: every shape it accepts read the
// same, mistakes named, then ternctl's JSON pasted like a person and checked (one relayed row per
// URL), and the advice a turns: URL's ICE error 701 brings (the browser's call replaced by one
// that fails with 701, so no certificate has to fail for it).
async function pastedCase(page, port, tlsPort) {
  const name = 'pasted-ice-servers';
  const urls = [`turn:127.0.0.1:${port}?transport=udp`, `turns:localhost:${tlsPort}?transport=tcp`];
  const json = ternctlIceServer(urls);
  const entry = JSON.parse(json);
  const shapes = {
    object: json,
    array: JSON.stringify([entry]),
    iceServers: JSON.stringify({ iceServers: [entry] }),
    ternctlText: `username: ${entry.username}\npassword: ${entry.credential}\niceServers entry:\n${json}`,
  };
  const parsed = await page.evaluate((texts) => Object.fromEntries(
    Object.entries(texts).map(([k, t]) => [k, window.parseIceServers(t)])),
  { ...shapes, notJson: '{"urls": [', noUrls: '{"username": "x"}', badUrls: '{"urls": 3}', empty: '  ' });
  const shapeChecks = Object.keys(shapes).map((shape) => {
    const p = parsed[shape];
    return check(name, p && p.servers && p.servers.map((x) => x.url).join(' ') === urls.join(' ') &&
      p.servers.every((x) => x.username === entry.username && x.credential === entry.credential),
    `${shape} read as ${JSON.stringify(p)}`);
  });
  shapeChecks.push(check(name, parsed.notJson && /^not JSON/.test(parsed.notJson.error) &&
    parsed.noUrls && parsed.noUrls.error && parsed.badUrls && /"urls"/.test(parsed.badUrls.error) &&
    parsed.empty === null, `mistakes read as ${JSON.stringify([parsed.notJson, parsed.noUrls, parsed.badUrls, parsed.empty])}`));

  await page.fill('#iceServers', json);
  const summary = await page.textContent('#pasted');
  shapeChecks.push(check(name, summary.startsWith('2 URL(s)') && summary.includes(`username ${entry.username}, valid until`),
    `the box's summary says ${JSON.stringify(summary)}`));
  await page.click('button');
  await page.waitForFunction(operatorPageDone, urls.length, { timeout: 60000 });
  const rows = await page.$$eval('#results tr', resultRows);
  const relayed = check(name, rows.length === urls.length && rows.every((r, i) => r[0] === urls[i] && r[1] === 'relayed'),
    `relay-check.html reported ${JSON.stringify(rows)} for ${json}`);
  if (shapeChecks.every(Boolean) && relayed) {
    log(`ok   ${name}: 4 shapes read, mistakes named; ${rows.map((r) => `${r[0]} ${r[1]}`).join(', ')}`);
  }

  const tlsUrl = 'turns:turn.example.org:443?transport=tcp';
  await page.evaluate(() => {
    window.realRelayCall = window.relayCall;
    window.relayCall = async () => ({
      connected: false, states: ['failed', 'failed'], candidates: [],
      errors: [{ side: 'caller', code: 701, text: 'TURN allocate request timed out.', url: 'x' }],
    });
  });
  try {
    await page.fill('#iceServers', JSON.stringify({ ...entry, urls: [tlsUrl] }));
    await page.click('button');
    await page.waitForFunction(operatorPageDone, 1, { timeout: 10000 });
    const failed = await page.$$eval('#results tr', resultRows);
    const advice = await page.textContent('#advice');
    if (check(`${name}-701`, failed.length === 1 && failed[0][1] === 'FAILED' && failed[0][2].includes('ICE errors: 701') &&
        advice.includes('TLS handshake') &&
        advice.includes('openssl s_client -connect turn.example.org:443 -servername turn.example.org'),
    `rows ${JSON.stringify(failed)}, advice ${JSON.stringify(advice)}`)) {
      log(`ok   ${name}-701: a turns: 701 explained, with the openssl s_client line for its host and port`);
    }
  } finally {
    await page.evaluate(() => { window.relayCall = window.realRelayCall; });
    // The form, not the box, for whatever case runs next on this page.
    await page.fill('#iceServers', '');
  }
}

// TURN on a website's port (ternd's `edge`): nginx serves the relay-check page over HTTPS behind
// ternd's tls:// listener, which passes every TLS connection that is not TURN to it undecrypted
// (with a PROXY v2 header). The browser loads the page from https://WEB_NAME:SHARED/ and, from
// that page, relays through turns:TURN_NAME:SHARED, the same port. ternd holds a certificate for
// TURN_NAME only (tls.certificates) and nginx one for WEB_NAME only, so the page's certificate
// shows that nginx, not ternd, ended its TLS; nginx's access log (the PROXY header's address)
// and ternd's tern_edge_connections_total show the page came through ternd.
const WEB_NAME = 'www.e2e.tern.test';
const TURN_NAME = 'turn.e2e.tern.test';

async function sharedPortCase(browser, pki) {
  const name = 'shared-port';
  const webPort = await freePort();
  const sharedPort = await freePort();
  const port = await freePort();
  const metricsPort = await freePort();
  const web = startNginx('nginx', {
    port: webPort, cert: pki.issue('web', [WEB_NAME]), names: [WEB_NAME], proxyProtocol: true,
    files: { 'index.html': path.join(here, '..', '..', 'docs', 'relay-check.html') },
  });
  const tern = startTernd('shared-port', terndYaml({
    port, tlsPort: sharedPort, pki: pki.issue('turn', [TURN_NAME]), tlsNames: [TURN_NAME], metricsPort,
    allowPeers: ['127.0.0.0/8', '"::1"'],
    edge: { fallback: `127.0.0.1:${webPort}`, turnNames: [TURN_NAME], proxyProtocol: 'v2' },
  }));
  await Promise.all([web.ready, tern.ready]);
  const sorted = (route) => `tern_edge_connections_total{route="${route}"}`;
  const m0 = await scrape(metricsPort);

  const page = await browser.newPage();
  logPageErrors(page);
  const url = `https://${WEB_NAME}:${sharedPort}/`;
  let response = null;
  try {
    response = await page.goto(url, { timeout: 15000 });
  } catch (e) {
    check(`${name}-page`, false, `${url} did not load: ${e.message}\nnginx: ${web.errors()}\nternd: ${tern.output()}`);
    return;
  }
  const tls = await response.securityDetails();
  const nextHop = await page.evaluate(() => performance.getEntriesByType('navigation')[0].nextHopProtocol);
  const hasPage = await page.evaluate(() => typeof window.relayCall === 'function');
  const m1 = await scrape(metricsPort);
  const fallback = delta(m0, m1, sorted('fallback'));
  const toClient = delta(m0, m1, 'tern_edge_fallback_bytes_total{direction="to_client"}');
  // One line per request: $remote_addr $proxy_protocol_addr $ssl_server_name "$request" $status $bytes.
  const served = web.accessLog().split('\n').filter((l) => l.includes(' "GET / HTTP/'));
  const pageChecks = [
    check(`${name}-page`, response.status() === 200 && hasPage,
      `status ${response.status()}, relay-check.html functions ${hasPage ? '' : 'not '}there`),
    check(`${name}-page`, tls && tls.subjectName === WEB_NAME,
      `certificate ${JSON.stringify(tls)}: not nginx's (${WEB_NAME})`),
    check(`${name}-page`, nextHop === 'h2', `protocol ${nextHop}, expected h2 (ALPN negotiated with nginx)`),
    check(`${name}-page`, fallback >= 1 && toClient > 0,
      `ternd passed ${fallback} connection(s), ${toClient} bytes to the browser, to the fallback`),
    check(`${name}-page`, delta(m0, m1, sorted('turn_tls')) === 0 && delta(m0, m1, sorted('turn_tcp')) === 0,
      `loading the page made TURN connections: ${JSON.stringify([...m1].filter(([k]) => k.startsWith('tern_edge_')))}`),
    check(`${name}-page`, served.some((l) => l.startsWith(`127.0.0.1 127.0.0.1 ${WEB_NAME} "GET / HTTP/2.0" 200 `)),
      `nginx's access log has no GET / through ternd's PROXY header:\n${web.accessLog()}`),
  ];
  if (pageChecks.every(Boolean)) {
    log(`ok   ${name}-page: ${url} from nginx through ternd (${nextHop}, certificate ${tls.subjectName}, ` +
      `${fallback} connection(s) passed, ${toClient} bytes to the browser)`);
  }

  await relayCase(page, `${name}-relay`, `turns:${TURN_NAME}:${sharedPort}?transport=tcp`, 'tls');
  const m2 = await scrape(metricsPort);
  const turnTls = delta(m1, m2, sorted('turn_tls'));
  const refused = [...m2].filter(([k, v]) => /^tern_edge_(refused|fallback_refused)_total/.test(k) && v > 0);
  if (check(`${name}-relay`, turnTls >= 1, `ternd sorted ${turnTls} connection(s) to its own TLS (route turn_tls)`) &&
      check(`${name}-relay`, refused.length === 0, `ternd refused connections: ${JSON.stringify(refused)}`)) {
    log(`ok   ${name}-relay: ${turnTls} TURN connection(s) on the shared port (route turn_tls)`);
  }
  await page.close();
}

async function main() {
  const version = execFileSync(chromiumPath, ['--version']).toString().trim();
  log(`browser: ${version}`);
  // A certificate for `localhost` signed by a throw-away CA that only this run's Chromium trusts:
  // Chromium on Linux reads trust anchors from $HOME/.pki/nssdb.
  const home = workPath('home');
  const pki = makeCertificates({
    caName: 'tern e2e CA', hostNames: ['localhost'], ipAddresses: ['127.0.0.1'],
    nssdb: path.join(home, '.pki', 'nssdb'),
  });
  const port = await freePort();
  const tlsPort = await freePort();
  const strictPort = await freePort();
  const strictTlsPort = await freePort();
  const tern = startTernd('allow-loopback', terndYaml({ port, tlsPort, pki, allowPeers: ['127.0.0.0/8', '"::1"'] }));
  const strict = startTernd('default-peers', terndYaml({ port: strictPort, tlsPort: strictTlsPort, pki }));
  await Promise.all([tern.ready, strict.ready]);

  const http = await servePage();

  const browser = await chromium.launch({
    executablePath: chromiumPath,
    headless: true,
    env: { ...process.env, HOME: home },
    args: [
      '--allow-loopback-in-peer-connection',
      '--disable-features=WebRtcHideLocalIpsWithMdns',
      // The shared port's two names are this machine (run-e2e.sh maps them in /etc/hosts too).
      `--host-resolver-rules=MAP ${WEB_NAME} 127.0.0.1, MAP ${TURN_NAME} 127.0.0.1, ` +
        'MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1',
      '--autoplay-policy=no-user-gesture-required',
      '--use-fake-ui-for-media-stream',
    ],
  });
  try {
    const page = await browser.newPage();
    logPageErrors(page);
    await page.goto(http.url);
    const want = wanted(args);

    if (want('udp')) await relayCase(page, 'udp', `turn:127.0.0.1:${port}?transport=udp`, 'udp');
    if (want('tcp')) await relayCase(page, 'tcp', `turn:127.0.0.1:${port}?transport=tcp`, 'tcp');
    if (want('tls')) await relayCase(page, 'tls', `turns:localhost:${tlsPort}?transport=tcp`, 'tls');
    if (want('ipv6')) await relayCase(page, 'ipv6-udp', `turn:[::1]:${port}?transport=udp`, 'udp', true);
    if (want('kernel-fast-path')) await kernelFastPathCase(page, pki);

    if (want('operator')) {
      // The form an operator uses against a deployment, filled in and submitted like a person.
      for (const [field, value] of operatorFields('127.0.0.1', port, tlsPort)) {
        await page.fill(`input[name=${field}]`, value);
      }
      await page.click('button');
      await page.waitForFunction(operatorPageDone, null, { timeout: 90000 });
      const rows = await page.$$eval('#results tr', resultRows);
      if (checkOperatorRows(rows)) {
        log(`ok   operator-page: ${rows.map((r) => `${r[0]} ${r[1]}`).join(', ')}`);
      }
    }

    if (want('pasted')) await pastedCase(page, port, tlsPort);

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

    if (want('shared-port')) await sharedPortCase(browser, pki);
    // Chromium refuses a loopback ALTERNATE-SERVER; see redirectCase in harness.mjs.
    if (want('redirect')) await redirectCase(page, { followsLoopback: false });
  } finally {
    await browser.close();
    http.close();
  }
}

await run(main, { name: 'e2e', deadlineSeconds: 195, passed: 'all e2e cases passed' });
