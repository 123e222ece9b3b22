// tern's browser end-to-end test: a real ternd and Debian's headless Chromium, two
// RTCPeerConnections relayed through ternd (iceTransportPolicy 'relay') over UDP, TCP, TLS and
// IPv6, with a data channel and synthetic audio/video; plus the refusals and a STUN-only check.
// Run by run-e2e.sh inside a fresh network namespace (loopback only). Exit 0 = every case passed.
// What is not Chromium's own is in harness.mjs, shared with e2e-firefox.mjs.
//
//   node e2e.mjs --ternd PATH [--chromium /usr/bin/chromium] [--only NAME]

import { chromium } from 'playwright-core';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import {
  check, checkOperatorRows, checkRelayCall, flowSummary, freePort, init, log, logPageErrors, makeCertificates,
  operatorFields, operatorPageDone, relayCall, restCredential, resultRows, run, servePage, startTernd, terndYaml,
  wanted, workPath,
} from './harness.mjs';

const args = init({
  usage: 'usage: node e2e.mjs --ternd PATH [--chromium PATH] [--only CASE]',
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

async function refusedCase(page, name, urls, cred, expectCode) {
  const r = await relayCall(page, urls, cred, { timeoutMs: 8000, messages: 0, media: false });
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
      '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1',
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

await run(main, { name: 'e2e', deadlineSeconds: 170, passed: 'all e2e cases passed' });
