// driver.mjs: a headless browser for callsign's end-to-end tests, driven
// by the Go test that starts it. The test writes one JSON command per line
// on stdin; the driver answers each with one JSON line on stdout:
//   {"id":1,"op":"newPage","page":"alice","url":"http://127.0.0.1:8080/softphone/"}
//   {"id":1,"ok":true,"value":...}  or  {"id":1,"ok":false,"error":"..."}
// Ops: newPage, click, fill, select, waitVisible, waitHidden, text, eval,
// screenshot, closePage, quit. Page console lines go to stderr, prefixed by
// the page's name, so a failing test shows what the page said.
//
// Environment:
//   BROWSER     chromium (default): Debian's Chromium through Playwright;
//               firefox: Debian's Firefox ESR through Puppeteer (WebDriver
//               BiDi, which Playwright does not speak to a stock Firefox).
//   CHROMIUM, FIREFOX  the executables (/usr/bin/chromium, /usr/bin/firefox-esr)
//   FAKE_AUDIO  Chromium: a WAV file its fake microphone plays, looped
//               (a beep when unset). FAKE_TONE_HZ  Firefox: the frequency of
//               its fake microphone's tone (1000 when unset).
import readline from 'node:readline';

const kind = process.env.BROWSER || 'chromium';
const browser = kind === 'firefox' ? await firefox() : await chromium();
// One context per page: pages of two agents share nothing.
const pages = new Map();

async function chromium() {
  const { chromium } = await import('playwright-core');
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
  const b = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args,
  });
  return {
    async newPage(width, height) {
      const context = await b.newContext({ viewport: { width, height } });
      return { context, page: await context.newPage() };
    },
    click: (p, sel, timeout) => p.click(sel, { timeout }),
    fill: (p, sel, value, timeout) => p.fill(sel, value, { timeout }),
    select: (p, sel, value, timeout) => p.selectOption(sel, value, { timeout }),
    waitFor: (p, sel, state, timeout) => p.waitForSelector(sel, { state, timeout }),
    text: (p, sel, timeout) => p.textContent(sel, { timeout }),
    close: () => b.close(),
  };
}

async function firefox() {
  const { default: puppeteer } = await import('puppeteer-core');
  const b = await puppeteer.launch({
    browser: 'firefox',
    executablePath: process.env.FIREFOX || '/usr/bin/firefox-esr',
    headless: true,
    extraPrefsFirefox: {
      // A fake microphone, granted without asking.
      'media.navigator.streams.fake': true,
      'media.navigator.permission.disabled': true,
      'media.navigator.audio.fake_frequency': Number(process.env.FAKE_TONE_HZ || 1000),
      // Loopback candidates, as for Chromium.
      'media.peerconnection.ice.loopback': true,
      'media.peerconnection.ice.obfuscate_host_addresses': false,
      'media.autoplay.default': 0,
      // No updates, telemetry or other traffic from a test browser.
      'app.update.enabled': false,
      'datareporting.policy.dataSubmissionEnabled': false,
      'toolkit.telemetry.enabled': false,
      'network.captive-portal-service.enabled': false,
    },
  });
  const visible = (p, sel, timeout) => p.waitForSelector(sel, { visible: true, timeout });
  return {
    async newPage(width, height) {
      const context = await b.createBrowserContext();
      const page = await context.newPage();
      await page.setViewport({ width, height });
      return { context, page };
    },
    click: async (p, sel, timeout) => (await visible(p, sel, timeout)).click(),
    fill: (p, sel, value, timeout) => p.locator(sel).setTimeout(timeout).fill(value),
    select: async (p, sel, value, timeout) => {
      await visible(p, sel, timeout);
      await p.select(sel, value);
    },
    waitFor: (p, sel, state, timeout) =>
      p.waitForSelector(sel, state === 'visible' ? { visible: true, timeout } : { hidden: true, timeout }),
    text: async (p, sel, timeout) => {
      await p.waitForSelector(sel, { timeout });
      return p.$eval(sel, (e) => e.textContent);
    },
    close: () => b.close(),
  };
}

function page(name) {
  const p = pages.get(name);
  if (!p) throw new Error(`no page ${name}`);
  return p.page;
}

const ops = {
  async newPage({ page: name, url, width = 1280, height = 800 }) {
    const { context, page: p } = await browser.newPage(width, height);
    p.on('console', (m) => process.stderr.write(`[${name}] ${m.type()}: ${m.text()}\n`));
    p.on('pageerror', (e) => process.stderr.write(`[${name}] page error: ${e.message}\n`));
    pages.set(name, { context, page: p });
    await p.goto(url);
    return true;
  },
  async click({ page: name, selector, timeout = 10000 }) {
    await browser.click(page(name), selector, timeout);
    return true;
  },
  async fill({ page: name, selector, value, timeout = 10000 }) {
    await browser.fill(page(name), selector, value, timeout);
    return true;
  },
  async select({ page: name, selector, value, timeout = 10000 }) {
    await browser.select(page(name), selector, value, timeout);
    return true;
  },
  async waitVisible({ page: name, selector, timeout = 10000 }) {
    await browser.waitFor(page(name), selector, 'visible', timeout);
    return true;
  },
  async waitHidden({ page: name, selector, timeout = 10000 }) {
    await browser.waitFor(page(name), selector, 'hidden', timeout);
    return true;
  },
  async text({ page: name, selector, timeout = 10000 }) {
    return await browser.text(page(name), selector, timeout);
  },
  // expr is the body of an async function; its return value must be JSON.
  async eval({ page: name, expr }) {
    return await page(name).evaluate(`(async () => { ${expr} })()`);
  },
  async screenshot({ page: name, path, fullPage = false }) {
    await page(name).screenshot({ path, fullPage });
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
