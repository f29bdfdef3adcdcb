// Drives the web console in a real browser against a real server: not part
// of `cargo test` (a fresh machine has no browser). Needs Chromium and
// playwright-core:
//
//   apt-get install chromium && npm install --prefix /tmp/pw playwright-core@1
//   cargo build && NODE_PATH=/tmp/pw/node_modules node tests/browser/console.js
//
// SMSHOOK_BIN (default target/debug/smshook) and CHROMIUM (default
// /usr/bin/chromium) say where they are. Exits non-zero on the first
// check that fails, or on any error the page logs.
'use strict';

const assert = require('node:assert/strict');
const { spawn, execFileSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { chromium } = require('playwright-core');

const BIN = process.env.SMSHOOK_BIN || 'target/debug/smshook';
const PORT = 18000 + Math.floor(Math.random() * 1000);
const BASE = `http://127.0.0.1:${PORT}`;
const TOKEN = 'console-check-token';

function send(provider, type, secret) {
  const url = `${BASE}/webhooks/${provider}`;
  try {
    execFileSync(BIN, ['send', provider, type, '--url', url, '--secret', secret], { stdio: 'pipe' });
  } catch (refused) {
    return refused.status;
  }
  return 0;
}

async function server() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'smshook-console-'));
  // Two sources, and a destination nothing listens at: its deliveries wait.
  const config = `
listen = "127.0.0.1:${PORT}"
database = "${path.join(dir, 'db')}"

[[sources]]
name = "integify"
provider = "integify"
secrets = ["integify-secret"]

[[sources]]
name = "msgine"
provider = "msgine"
secrets = ["msgine-secret"]

[[destinations]]
name = "app"
url = "http://127.0.0.1:9/hooks?token=not-shown"
secret = "whsec_${Buffer.from('a console check key, 32 bytes..').toString('base64')}"
types = ["message.received"]
`;
  fs.writeFileSync(path.join(dir, 'smshook.toml'), config);
  const env = { ...process.env, SMSHOOK_API_TOKEN: TOKEN };
  const args = ['serve', '--config', path.join(dir, 'smshook.toml')];
  const child = spawn(BIN, args, { env, stdio: 'ignore' });
  for (let i = 0; i < 100; i += 1) {
    try {
      if ((await fetch(`${BASE}/healthz`)).ok) {
        return child;
      }
    } catch {
      // not listening yet
    }
    await new Promise((done) => setTimeout(done, 100));
  }
  throw new Error('the server did not start');
}

async function statusAfter(page, action) {
  await action();
  await page.waitForFunction(() => document.getElementById('status').textContent !== 'Loading…');
  return page.textContent('#status');
}

async function main() {
  const child = await server();
  const browser = await chromium.launch({ executablePath: process.env.CHROMIUM || '/usr/bin/chromium', args: ['--no-sandbox'] });
  try {
    for (const type of ['sms.delivered', 'sms.failed', 'sms.received']) {
      assert.equal(send('integify', type, 'integify-secret'), 0);
    }
    assert.notEqual(send('msgine', 'message.delivered', 'wrong-secret'), 0);

    const page = await browser.newPage();
    const errors = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(`${BASE}/`);
    assert.match(await page.textContent('#status'), /Give the API token/);

    await page.fill('#token', 'not-it');
    assert.match(await statusAfter(page, () => page.click('#token-form button')), /not the API token/);
    await page.fill('#token', TOKEN);
    assert.equal(await statusAfter(page, () => page.click('#token-form button')), '3 events, newest first.');
    await page.click('#events-rows tr:first-child');
    assert.match(await page.textContent('#event-fields'), /opt_outtrue/);
    assert.match(await page.textContent('#event-payload'), /"sms.received"/);

    await page.click('#events-rows tr:nth-child(2)');
    await page.click('#event-message');
    await page.waitForFunction(() => document.getElementById('status').textContent === '1 event, newest first.');
    const messageId = await page.evaluate(() => document.getElementById('event-message').dataset.messageId);
    assert.match(messageId, /^msg_/);
    assert.equal(await page.inputValue('#events-filter input[name=message_id]'), messageId);
    await page.fill('#events-filter input[name=message_id]', '');
    assert.equal(await statusAfter(page, () => page.click('#events-filter button')), '3 events, newest first.');

    await page.check('#live');
    await page.waitForFunction(() => /Live/.test(document.getElementById('status').textContent));
    assert.equal(send('integify', 'sms.delivered', 'integify-secret'), 0);
    await page.waitForFunction(() => document.querySelectorAll('#events-rows tr').length === 4);
    await page.uncheck('#live');

    await page.click('nav a[data-view=requests]');
    await page.check('#requests-filter input[name=refused]');
    const refused = await statusAfter(page, () => page.click('#requests-filter button'));
    assert.equal(refused, '1 request, newest first.');
    assert.match(await page.textContent('#requests-rows'), /does not match any configured secret/);

    await page.check('#requests-follow');
    assert.notEqual(send('msgine', 'message.failed', 'wrong-secret'), 0);
    await page.waitForFunction(() => document.getElementById('status').textContent === '2 requests, newest first.');
    await page.uncheck('#requests-follow');

    await page.click('nav a[data-view=stats]');
    await page.waitForFunction(() => document.querySelectorAll('#stats-outcomes tr').length === 1);
    assert.equal(await page.textContent('#stats-outcomes'), 'integify2167%');

    await page.click('nav a[data-view=optouts]');
    await page.waitForFunction(() => document.querySelectorAll('#optouts-rows tr').length === 1);
    const number = await page.textContent('#optouts-rows td:first-child');
    await page.fill('#optouts-filter input[name=number]', number);
    assert.match(await statusAfter(page, () => page.click('#optouts-filter button')), /is opted out/);
    await page.click('#optouts-rows button.link');
    await page.waitForFunction(() => location.hash === '#events' && !document.getElementById('event-detail').hidden);

    await page.click('nav a[data-view=deliveries]');
    await page.waitForFunction(() => /deliveries/.test(document.getElementById('status').textContent));
    await page.waitForFunction(() => document.querySelectorAll('#destinations-rows tr').length === 1);
    const destination = await page.$$eval('#destinations-rows td', (cells) => cells.map((c) => c.textContent));
    assert.deepEqual(destination.slice(0, 4), ['app', 'http', 'http://127.0.0.1:9/hooks (1 signing secret)', 'every source; message.received']);
    assert.match(await statusAfter(page, () => page.click('#retry-dead')), /dead deliveries scheduled again/);
    await page.click('nav a[data-view=sources]');
    await page.waitForFunction(() => document.querySelectorAll('#sources-rows tr').length === 2);
    const sources = await page.$$eval('#sources-rows tr', (rows) => rows.map((r) => [...r.cells].map((c) => c.textContent)));
    assert.deepEqual(sources[0].slice(0, 3), ['integify', 'integify', `${BASE}/webhooks/integify`]);
    assert.deepEqual(sources[1].slice(4), ['1 secret', 'any address', '0', '2 (invalid_signature 2)']);
    assert.deepEqual(errors, []);
    console.log('console: every check passed');
  } finally {
    await browser.close();
    child.kill();
  }
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
