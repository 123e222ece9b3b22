// tern's browser end-to-end test, Firefox edition: a real ternd and Debian's headless Firefox ESR,
// driven over its built-in WebDriver BiDi by puppeteer-core (Debian ships no geckodriver, and
// nothing is downloaded). Two RTCPeerConnections relayed through ternd (iceTransportPolicy
// 'relay') over turn: UDP, turn: TCP and turns: (TLS, by host name), on IPv4 and IPv6, with a data
// channel and synthetic audio/video; plus the operator's form, refused credentials and a fleet's
// 300 Try Alternate from a drained node (redirectCase in harness.mjs). Firefox's ICE/TURN stack (nICEr)
// shares no code with Chromium's, so this is a second, independent client.
// Run by run-e2e.sh --browser firefox inside a fresh network namespace whose /etc/hosts maps the
// TLS host names below to loopback. Exit 0 = every case passed.
// What is not Firefox's own is in harness.mjs, shared with e2e.mjs.
//
//   node e2e-firefox.mjs --ternd PATH [--firefox /usr/bin/firefox-esr] [--only NAME]
//                        [--secret S]   (ternd's secret; a different one must make the run fail)

import puppeteer from 'puppeteer-core';
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import {
  answered, check, checkOperatorRows, checkRelayCall, delta, flowSummary, freePort, here, init, log, logPageErrors,
  makeCertificates, operatorFields, operatorPageDone, redirectCase, relayCall, restCredential, resultRows, run, scrape,
  secret, servePage, startTernd, terndYaml, unusualAnswers, wanted, workPath,
} from './harness.mjs';

const args = init({
  usage: 'usage: node e2e-firefox.mjs --ternd PATH [--firefox PATH] [--only CASE] [--secret S]',
  workPrefix: 'tern-e2e-ff-',
});
const firefoxPath = args.firefox || '/usr/bin/firefox-esr';

// What ternd is configured with; only differs when showing that the test can fail.
const terndSecret = args.secret || secret;
// run-e2e.sh maps these in the namespace's /etc/hosts: one name per family, so each turns: case
// reaches ternd over exactly one of them. Firefox refuses turns: with an IP address. The IPv6 one
// is the namespace's veth address, not ::1: glibc answers an IPv4 lookup of a name listed as ::1
// with 127.0.0.1, and Firefox (resolving per local address family) would then reach ternd over
// IPv4 as well.
const tlsName4 = 'turn4.e2e.tern.test';
const tlsName6 = 'turn6.e2e.tern.test';
const tlsAddress6 = 'fd00:77::1';

// ---------------------------------------------------------------------------------------------
// The cases.

async function relayCase(ctx, name, urls, expectProtocol, expectIpv6) {
  const { page, metricsPort } = ctx;
  const cred = restCredential('alice', 600);
  const before = await scrape(metricsPort);
  const r = await relayCall(page, urls, cred, { timeoutMs: 15000, messages: 300, media: true });
  const after = await scrape(metricsPort);
  // A connectivity check can beat the trickled candidate it comes from, and Firefox then keeps
  // calling that remote candidate peer-reflexive. Both ends see the same selected pair, so a
  // prflx remote is the other end's local candidate, which must be a relay.
  const ok = checkRelayCall(name, r, expectProtocol, expectIpv6, { prflxRemote: true });
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
    log(`ok   ${name}: ${r.pairs.map((p) => `${p.localType}/${p.remoteType}`).join(' ')} over ${expectProtocol} (${r.pairs[0].localAddress}), ${flowSummary(r)}; ` +
      `ternd: ${allocated} ${expectProtocol}/${family} allocations, ${toPeer}/${toClient} packets relayed, requests ${answered(before, after)}`);
  }
}

async function refusedCase(ctx, name, urls, cred, reason) {
  const { page, metricsPort } = ctx;
  const before = await scrape(metricsPort);
  const r = await relayCall(page, urls, cred, { timeoutMs: 6000, messages: 0, media: false });
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
  // A certificate for the two TLS host names, signed by a throw-away CA that only this run's
  // Firefox profile trusts (certutil into the profile's own NSS database).
  const profile = workPath('profile');
  const pki = makeCertificates({ caName: 'tern e2e firefox CA', hostNames: [tlsName4, tlsName6], nssdb: profile });
  const port = await freePort();
  const tlsPort = await freePort();
  const metricsPort = await freePort();
  const tern = startTernd('ternd', terndYaml({
    port, tlsPort, pki, terndSecret, tlsAddress6, allowPeers: ['127.0.0.0/8', '"::1"', `"${tlsAddress6}"`], metricsPort,
  }));
  await tern.ready;
  log(`ternd ready: udp/tcp ${port}, tls ${tlsPort}, metrics ${metricsPort}`);

  const http = await servePage();

  const home = workPath('home');
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
    logPageErrors(page);
    await page.goto(http.url, { timeout: 15000 });
    const ctx = { page, metricsPort };
    const want = wanted(args);

    if (want('udp4')) await relayCase(ctx, 'udp4', `turn:127.0.0.1:${port}?transport=udp`, 'udp', false);
    if (want('tcp4')) await relayCase(ctx, 'tcp4', `turn:127.0.0.1:${port}?transport=tcp`, 'tcp', false);
    if (want('tls4')) await relayCase(ctx, 'tls4', `turns:${tlsName4}:${tlsPort}?transport=tcp`, 'tls', false);
    if (want('udp6')) await relayCase(ctx, 'udp6', `turn:[::1]:${port}?transport=udp`, 'udp', true);
    if (want('tcp6')) await relayCase(ctx, 'tcp6', `turn:[::1]:${port}?transport=tcp`, 'tcp', true);
    if (want('tls6')) await relayCase(ctx, 'tls6', `turns:${tlsName6}:${tlsPort}?transport=tcp`, 'tls', true);

    if (want('operator')) {
      // The operator's form, filled in and submitted like a person, with the host name the
      // certificate has (Firefox needs it for turns:; the turn: URLs resolve it too).
      for (const [field, value] of operatorFields(tlsName4, port, tlsPort)) {
        await page.locator(`input[name=${field}]`).setTimeout(5000).fill(value);
      }
      await page.locator('button').setTimeout(5000).click();
      await page.waitForFunction(operatorPageDone, { timeout: 60000, polling: 250 });
      const rows = await page.$$eval('#results tr', resultRows);
      if (checkOperatorRows(rows)) {
        log(`ok   operator-page: ${rows.map((r) => `${r[0]} ${r[1]} (${r[2]})`).join('; ')}`);
      }
    }

    if (want('refused')) {
      await refusedCase(ctx, 'wrong-secret', `turn:127.0.0.1:${port}?transport=udp`,
        restCredential('alice', 600, 'not-the-secret'), 'integrity_mismatch');
      await refusedCase(ctx, 'expired-username', `turn:127.0.0.1:${port}?transport=udp`,
        restCredential('alice', -60), 'credential_expired');
    }

    // A drained fleet node's 300 Try Alternate (harness.mjs): nICEr has no loopback rule.
    if (want('redirect')) await redirectCase(page, { followsLoopback: true, prflxRemote: true });
  } finally {
    await browser.close();
    http.close();
  }
}

await run(main, { name: 'e2e-firefox', deadlineSeconds: 140, passed: 'all Firefox e2e cases passed' });
