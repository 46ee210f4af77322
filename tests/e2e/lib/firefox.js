// Debian's firefox-esr driven by puppeteer-core over WebDriver BiDi (playwright-core cannot drive
// it: it needs its own patched build), with the prefs TESTING.md lists, one Firefox process per
// caller (two tabs in one Firefox: the background tab stops rendering video).
//
// The suites drive pages through a small part of Playwright's Page API (goto, evaluate,
// waitForFunction, click, check, isVisible, waitForSelector, ...). `FirefoxPage` gives a puppeteer
// page that same part, so every scenario runs unchanged whichever browser a caller uses.
// Firefox gathers no ICE candidate at all in a namespace without a default route (run.sh adds
// `default dev lo src 127.0.0.1`, which still lets nothing leave).

import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

import puppeteer from "puppeteer-core";

import { assertInNamespace } from "./harness.js";

/** Debian's Firefox ESR; never a downloaded browser. */
export const FIREFOX = process.env.ALISAY_E2E_FIREFOX || "/usr/bin/firefox-esr";

/** Fake media without prompts, ICE on loopback, plain host addresses (TESTING.md). */
const PREFS = {
  "media.navigator.streams.fake": true,
  "media.navigator.permission.disabled": true,
  "media.peerconnection.ice.loopback": true,
  "media.peerconnection.ice.obfuscate_host_addresses": false,
  // Nothing of Firefox's own traffic (updates, telemetry, captive portal, safe browsing).
  "app.update.enabled": false,
  "network.captive-portal-service.enabled": false,
  "network.connectivity-service.enabled": false,
  "browser.safebrowsing.malware.enabled": false,
  "browser.safebrowsing.phishing.enabled": false,
  "datareporting.policy.dataSubmissionEnabled": false,
  "toolkit.telemetry.enabled": false,
  "network.dns.disableIPv6": true,
};

/** Converts Playwright's `polling` option to puppeteer's. */
const polling = (p) => (typeof p === "number" ? p : "raf");

/**
 * A puppeteer page with the part of Playwright's Page API the suites use. Selectors are CSS.
 */
export class FirefoxPage {
  /** @param {import("puppeteer-core").Page} page */
  constructor(page) {
    this.raw = page;
    this.timeout = 15_000;
    this.keyboard = { press: (key) => page.keyboard.press(key) };
  }

  setDefaultTimeout(ms) {
    this.timeout = ms;
    this.raw.setDefaultTimeout(ms);
  }

  on(event, fn) {
    if (event === "websocket") return; // not in BiDi; frames are recorded in the page instead
    this.raw.on(event, fn);
  }

  mainFrame() {
    return this.raw.mainFrame();
  }

  async goto(url) {
    await this.raw.goto(url, { waitUntil: "load", timeout: 30_000 });
  }

  async reload() {
    await this.raw.reload({ waitUntil: "load", timeout: 30_000 });
  }

  addInitScript(fn) {
    return this.raw.evaluateOnNewDocument(fn);
  }

  evaluate(fn, arg) {
    return this.raw.evaluate(fn, arg);
  }

  async waitForFunction(fn, arg, { timeout = this.timeout, polling: p } = {}) {
    await this.raw.waitForFunction(fn, { timeout, polling: polling(p) }, arg);
  }

  async waitForSelector(selector, { state = "visible", timeout = this.timeout } = {}) {
    const want = state;
    await this.waitForFunction(
      ([sel, st]) => {
        const el = document.querySelector(sel);
        const visible = !!el && el.checkVisibility();
        return st === "visible" ? visible : st === "hidden" ? !visible : st === "detached" ? !el : !!el;
      },
      [selector, want],
      { timeout, polling: 50 },
    );
  }

  async click(selector) {
    await this.waitForSelector(selector, { state: "visible" });
    await this.waitForFunction((sel) => !document.querySelector(sel).disabled, selector, { polling: 50 });
    await this.raw.click(selector);
  }

  async check(selector) {
    if (!(await this.isChecked(selector))) await this.click(selector);
  }

  isChecked(selector) {
    return this.raw.$eval(selector, (el) => el.checked);
  }

  isVisible(selector) {
    return this.raw.evaluate((sel) => !!document.querySelector(sel)?.checkVisibility(), selector);
  }

  inputValue(selector) {
    return this.raw.$eval(selector, (el) => el.value);
  }

  getAttribute(selector, name) {
    return this.raw.$eval(selector, (el, n) => el.getAttribute(n), name);
  }

  textContent(selector) {
    return this.raw.$eval(selector, (el) => el.textContent);
  }
}

/**
 * Records every text frame the page's WebSockets send into sessionStorage (it survives a
 * reload), for the "the token never leaves the browser" check: WebDriver BiDi has no WebSocket
 * frame events. Injected before the page's scripts.
 */
function recordFrames() {
  const origSend = window.WebSocket.prototype.send;
  window.WebSocket.prototype.send = function send(data) {
    try {
      const kept = JSON.parse(sessionStorage.getItem("__e2eFrames") || "[]");
      kept.push(String(data));
      sessionStorage.setItem("__e2eFrames", JSON.stringify(kept.slice(-400)));
    } catch {
      // Storage full or unavailable: the check then sees fewer frames, never more.
    }
    return origSend.call(this, data);
  };
}

/**
 * A fresh Firefox profile directory; with `caPem`, its NSS database trusts that test CA (for
 * the HTTPS site and TURN over TLS, lib/tls.js).
 */
function makeProfile(caPem) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "alisay-ff-"));
  if (caPem) {
    const run = (args) => {
      const r = spawnSync("certutil", args, { encoding: "utf8", timeout: 20_000 });
      if (r.status !== 0) throw new Error(`certutil ${args[0]} failed: ${r.stderr}`);
    };
    run(["-N", "-d", `sql:${dir}`, "--empty-password"]);
    run(["-A", "-d", `sql:${dir}`, "-n", "alisay-test-ca", "-t", "C,,", "-i", caPem]);
  }
  return dir;
}

/**
 * Starts one headless Firefox for one caller and returns its first page, wrapped.
 * @param {{caPem?: string}} [o] a test CA to trust (PEM file path)
 * @returns {Promise<{browser: import("puppeteer-core").Browser, page: FirefoxPage, profile: string}>}
 */
export async function launchFirefox({ caPem } = {}) {
  assertInNamespace();
  const profile = makeProfile(caPem);
  const browser = await puppeteer.launch({
    browser: "firefox",
    executablePath: FIREFOX,
    headless: true,
    protocol: "webDriverBiDi",
    userDataDir: profile,
    extraPrefsFirefox: PREFS,
    defaultViewport: { width: 800, height: 700 },
    timeout: 60_000,
    env: { ...process.env, MOZ_CRASHREPORTER_DISABLE: "1" },
  });
  const pages = await browser.pages();
  const raw = pages[0] ?? (await browser.newPage());
  await raw.evaluateOnNewDocument(recordFrames);
  return { browser, page: new FirefoxPage(raw), profile };
}

/** The frames recorded by {@link recordFrames} on this page so far. */
export async function recordedFrames(page) {
  try {
    return await page.evaluate(() => JSON.parse(sessionStorage.getItem("__e2eFrames") || "[]"));
  } catch {
    return [];
  }
}
