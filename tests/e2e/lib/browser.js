// Launching Debian's Chromium through playwright-core with the flags TESTING.md lists, and
// opening call pages whose console output goes to files under tests/e2e/out/ (redacted).

import fs from "node:fs";
import path from "node:path";
import { chromium } from "playwright-core";

import { launchFirefox, recordedFrames } from "./firefox.js";
import { OUT_DIR, redact } from "./harness.js";

/** Debian's Chromium; never a downloaded browser. */
export const CHROMIUM = process.env.ALISAY_E2E_CHROMIUM || "/usr/bin/chromium";

/** Flags that make WebRTC work on loopback and keep Chromium from reaching out on its own. */
const FLAGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--use-fake-ui-for-media-stream",
  "--use-fake-device-for-media-stream",
  "--allow-loopback-in-peer-connection",
  "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE localhost , EXCLUDE 127.0.0.1",
];

/** The feature TESTING.md says to disable on top of Playwright's own list. */
const EXTRA_DISABLED_FEATURE = "WebRtcHideLocalIpsWithMdns";

/**
 * Playwright passes one `--disable-features=...` switch of its own and Chromium honours only
 * one such switch, so ours must be the merge of both. Playwright does not export its list; read
 * it from the command line of a browser it launched (our child process, found in /proc).
 */
async function playwrightDisableFeaturesArg() {
  const probe = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: FLAGS,
    timeout: 30_000,
  });
  try {
    for (const pid of fs.readdirSync("/proc").filter((d) => /^\d+$/.test(d))) {
      let stat;
      let argv;
      try {
        stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
        argv = fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
      } catch {
        continue; // gone, or not ours to read
      }
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      if (ppid !== process.pid || !argv.includes("--remote-debugging-pipe")) continue;
      const arg = argv.find((a) => a.startsWith("--disable-features="));
      if (arg) return arg;
    }
  } finally {
    await probe.close();
  }
  throw new Error("could not find Playwright's --disable-features switch on the launched Chromium");
}

/**
 * Launches headless Chromium with the test flags.
 * @param {object} [o]
 * @param {Record<string, string>} [o.env] the browser's environment (default: ours), e.g. with
 *     `HOME` pointing at a home whose NSS database trusts a test CA (lib/tls.js)
 * @param {string} [o.executablePath] what to run instead of {@link CHROMIUM}, e.g. the network
 *     lab's wrapper that runs Chromium inside a caller's network namespace
 * @param {string[]} [o.resolve] more hosts (IP literals) the host resolver may reach: the
 *     rules map every other name, IP literals included, to NOTFOUND
 * @param {string[]} [o.args] more switches, after ours (a later switch of the same name wins)
 * @returns {Promise<import("playwright-core").Browser>}
 */
export async function launchBrowser({ env, executablePath = CHROMIUM, resolve = [], args = [] } = {}) {
  const defaultArg = await playwrightDisableFeaturesArg();
  const merged = `${defaultArg},${EXTRA_DISABLED_FEATURE}`;
  const flags = FLAGS.map((f) => (f.startsWith("--host-resolver-rules=") ? f + resolve.map((h) => ` , EXCLUDE ${h}`).join("") : f));
  return chromium.launch({
    executablePath,
    headless: true,
    ignoreDefaultArgs: [defaultArg],
    args: [...flags, merged, ...args],
    timeout: 30_000,
    ...(env ? { env } : {}),
  });
}

/**
 * Records the TYPES of signaling messages (never their contents) so a failing test can show
 * what happened on the wire. Injected with addInitScript, so the page's CSP does not apply.
 */
function signalingTrace() {
  const trace = [];
  Object.defineProperty(window, "__sigTrace", { value: trace });
  const t = () => Math.round(performance.now());
  const Orig = window.WebSocket;
  const origSend = Orig.prototype.send;
  Orig.prototype.send = function send(data) {
    try {
      trace.push(`${t()} out ${JSON.parse(data).type}`);
    } catch {
      trace.push(`${t()} out <non-json>`);
    }
    return origSend.call(this, data);
  };
  class TracedWebSocket extends Orig {
    constructor(...args) {
      super(...args);
      trace.push(`${t()} ws-open-called`);
      this.addEventListener("open", () => trace.push(`${t()} ws-open`));
      this.addEventListener("message", (e) => {
        try {
          const m = JSON.parse(e.data);
          const extra = m.type === "error" ? ` ${m.code}` : m.type === "bye" ? ` ${m.reason}` : m.type === "start" ? ` polite=${m.polite}` : "";
          trace.push(`${t()} in ${m.type}${extra}`);
        } catch {
          trace.push(`${t()} in <non-json>`);
        }
      });
      this.addEventListener("close", (e) => trace.push(`${t()} ws-close ${e.code}`));
    }
  }
  window.WebSocket = TracedWebSocket;
  // State changes of #status, on the same timeline.
  let lastState = null;
  const watchState = () => {
    const st = document.querySelector("#status")?.dataset.state ?? null;
    if (st !== lastState) {
      lastState = st;
      trace.push(`${t()} state ${st}`);
    }
  };
  document.addEventListener("DOMContentLoaded", () => {
    watchState();
    new MutationObserver(watchState).observe(document.documentElement, { subtree: true, childList: true, attributes: true, attributeFilter: ["data-state"] });
  });
  // Counts camera/microphone requests (SPEC §7.6: only after admission, never on page load).
  let gum = 0;
  Object.defineProperty(window, "__gumCalls", { get: () => gum });
  const md = navigator.mediaDevices;
  if (md && md.getUserMedia) {
    const orig = md.getUserMedia.bind(md);
    md.getUserMedia = (...a) => {
      gum += 1;
      trace.push(`${t()} getUserMedia`);
      return orig(...a);
    };
  }
}

/**
 * A caller: one browser context (a separate "person") with one page. Console, page errors and
 * the signaling trace go to `out/<label>.console.log` with secrets redacted.
 */
export class Caller {
  /**
   * @param {import("playwright-core").Browser} browser
   * @param {string} label file-name-safe label, e.g. `a-relay-A`
   * @param {import("playwright-core").BrowserContextOptions} [contextOptions] more options for
   *     the context (e.g. `ignoreHTTPSErrors` for a negative TLS control)
   */
  static async open(browser, label, contextOptions = {}) {
    const context = await browser.newContext({ viewport: { width: 800, height: 700 }, ...contextOptions });
    context.setDefaultTimeout(15_000);
    const page = await context.newPage();
    const c = new Caller(context, page, label);
    await page.addInitScript(signalingTrace);
    return c;
  }

  /**
   * A caller in a Firefox process of its own (lib/firefox.js), with the same page API.
   * @param {string} label
   * @param {{caPem?: string}} [o] a test CA its profile trusts (lib/tls.js)
   */
  static async openFirefox(label, { caPem } = {}) {
    const { browser, page, profile } = await launchFirefox({ caPem });
    page.setDefaultTimeout(15_000);
    const context = {
      close: async () => {
        await browser.close().catch(() => {});
        fs.rmSync(profile, { recursive: true, force: true });
      },
    };
    const c = new Caller(context, page, label, "firefox");
    await page.addInitScript(signalingTrace);
    return c;
  }

  /**
   * @param {object} context has `close()`
   * @param {object} page a Playwright page, or a {@link import("./firefox.js").FirefoxPage}
   * @param {string} label
   * @param {"chromium"|"firefox"} [kind]
   */
  constructor(context, page, label, kind = "chromium") {
    this.kind = kind;
    this.context = context;
    this.page = page;
    this.label = label;
    this.logPath = path.join(OUT_DIR, `${label}.console.log`);
    this.log = fs.createWriteStream(this.logPath, { flags: "a" });
    const t0 = Date.now();
    const write = (line) => this.log.write(`${((Date.now() - t0) / 1000).toFixed(3)} ${redact(line)}\n`);
    this.write = write;
    page.on("console", (m) => write(`[${m.type()}] ${m.text()}`));
    page.on("pageerror", (e) => write(`[pageerror] ${e.stack || e}`));
    page.on("requestfailed", (r) => write(`[requestfailed] ${r.method()} ${r.url()} ${r.failure()?.errorText}`));
    // What the page sends (URLs without the never-sent #fragment, bodies, WebSocket frames),
    // for the "the token never leaves the browser" check.
    this.wire = [];
    page.on("request", (r) => {
      this.wire.push(["url", r.url().split("#")[0]]);
      let body;
      try {
        body = r.postData();
      } catch {
        body = undefined; // not offered over WebDriver BiDi; POST /rooms carries only the room id
      }
      if (body) this.wire.push(["body", body]);
    });
    page.on("websocket", (ws) => {
      this.wire.push(["url", ws.url().split("#")[0]]);
      ws.on("framesent", (f) => this.wire.push(["frame", String(f.payload)]));
    });
    page.on("response", (r) => {
      if (r.status() >= 400) write(`[http ${r.status()}] ${r.request().method()} ${new URL(r.url()).pathname}`);
    });
    page.on("framenavigated", (f) => {
      if (f === page.mainFrame()) write(`[navigated]`);
    });
  }

  /** Dumps the signaling trace and the visible state into the console log file. */
  async dumpDiagnostics(note = "") {
    if (this.kind === "firefox") {
      // Frames recorded inside the page (BiDi has no WebSocket events): replace, never add twice.
      const frames = await recordedFrames(this.page);
      if (frames.length) this.wire = this.wire.filter(([k]) => k !== "frame").concat(frames.map((f) => ["frame", f]));
    }
    try {
      const d = await this.page.evaluate(() => ({
        trace: window.__sigTrace || [],
        state: document.querySelector("#status")?.dataset.state,
        status: document.querySelector("#status")?.textContent,
        error: document.querySelector("#error")?.dataset.code,
        errorText: document.querySelector("#error")?.textContent,
        pc: window.alisay?.pc ? `${window.alisay.pc.connectionState}/${window.alisay.pc.iceConnectionState}/${window.alisay.pc.signalingState}` : null,
      }));
      this.write(`[diag ${note}] state=${d.state} status=${JSON.stringify(d.status)} error=${d.error} ${JSON.stringify(d.errorText)} pc=${d.pc}`);
      this.write(`[diag ${note}] signaling and state trace (heartbeats omitted):\n  ${d.trace.filter((l) => !/heartbeat/.test(l)).join("\n  ")}`);
    } catch (e) {
      this.write(`[diag ${note}] unavailable: ${e.message}`);
    }
  }

  async close() {
    try {
      await this.context.close();
    } finally {
      await new Promise((r) => this.log.end(r));
    }
  }
}
