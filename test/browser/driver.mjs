// driver.mjs: headless Chromium for callsign's end-to-end tests, driven by
// the Go test that starts it. The test writes one JSON command per line on
// stdin; the driver answers each with one JSON line on stdout:
//   {"id":1,"op":"newPage","page":"alice","url":"http://127.0.0.1:8080/softphone/"}
//   {"id":1,"ok":true,"value":...}  or  {"id":1,"ok":false,"error":"..."}
// Ops: newPage, click, fill, select, waitVisible, waitHidden, text, eval,
// screenshot, closePage, quit. Page console lines go to stderr, prefixed by
// the page's name, so a failing test shows what the page said.
//
// Environment: CHROMIUM (default /usr/bin/chromium), FAKE_AUDIO (a WAV file
// the fake microphone plays, looped; Chromium's beep when unset).
import { chromium } from 'playwright-core';
import readline from 'node:readline';

const args = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  // The microphone without a person to allow it, and a fake one.
  '--use-fake-ui-for-media-stream',
  '--use-fake-device-for-media-stream',
  // The edge's candidates are on 127.0.0.1 in the tests; Chromium leaves
  // loopback out of ICE unless told.
  '--allow-loopback-in-peer-connection',
  // The ring tone and the caller's audio play without a click.
  '--autoplay-policy=no-user-gesture-required',
];
if (process.env.FAKE_AUDIO) {
  args.push(`--use-file-for-fake-audio-capture=${process.env.FAKE_AUDIO}`);
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args,
});
// One context per page: pages of two agents share nothing.
const pages = new Map();

function page(name) {
  const p = pages.get(name);
  if (!p) throw new Error(`no page ${name}`);
  return p.page;
}

const ops = {
  async newPage({ page: name, url, width = 1280, height = 800 }) {
    const context = await browser.newContext({ viewport: { width, height } });
    const p = await context.newPage();
    p.on('console', (m) => process.stderr.write(`[${name}] ${m.type()}: ${m.text()}\n`));
    p.on('pageerror', (e) => process.stderr.write(`[${name}] page error: ${e.message}\n`));
    pages.set(name, { context, page: p });
    await p.goto(url);
    return true;
  },
  async click({ page: name, selector, timeout = 10000 }) {
    await page(name).click(selector, { timeout });
    return true;
  },
  async fill({ page: name, selector, value, timeout = 10000 }) {
    await page(name).fill(selector, value, { timeout });
    return true;
  },
  async select({ page: name, selector, value, timeout = 10000 }) {
    await page(name).selectOption(selector, value, { timeout });
    return true;
  },
  async waitVisible({ page: name, selector, timeout = 10000 }) {
    await page(name).waitForSelector(selector, { state: 'visible', timeout });
    return true;
  },
  async waitHidden({ page: name, selector, timeout = 10000 }) {
    await page(name).waitForSelector(selector, { state: 'hidden', timeout });
    return true;
  },
  async text({ page: name, selector, timeout = 10000 }) {
    return await page(name).textContent(selector, { timeout });
  },
  // expr is the body of an async function; its return value must be JSON.
  async eval({ page: name, expr }) {
    return await page(name).evaluate(`(async () => { ${expr} })()`);
  },
  async screenshot({ page: name, path }) {
    await page(name).screenshot({ path });
    return path;
  },
  async closePage({ page: name }) {
    const p = pages.get(name);
    if (p) {
      pages.delete(name);
      await p.context.close();
    }
    return true;
  },
  async quit() {
    await browser.close();
    process.exit(0);
  },
};

const rl = readline.createInterface({ input: process.stdin });
// Commands run one at a time, in order, as the test wrote them.
let chain = Promise.resolve();
rl.on('line', (line) => {
  chain = chain.then(async () => {
    let cmd;
    try {
      cmd = JSON.parse(line);
    } catch (e) {
      process.stdout.write(JSON.stringify({ ok: false, error: `bad command: ${e.message}` }) + '\n');
      return;
    }
    const op = ops[cmd.op];
    let reply;
    try {
      if (!op) throw new Error(`unknown op ${cmd.op}`);
      reply = { id: cmd.id, ok: true, value: await op(cmd) };
    } catch (e) {
      reply = { id: cmd.id, ok: false, error: String(e && e.message ? e.message : e) };
    }
    process.stdout.write(JSON.stringify(reply) + '\n');
  });
});
// The test going away (stdin closed) ends the browser too.
rl.on('close', async () => {
  await chain;
  await browser.close().catch(() => {});
  process.exit(0);
});
process.stdout.write(JSON.stringify({ id: 0, ok: true, value: 'ready' }) + '\n');
