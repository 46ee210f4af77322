// Chromium launches for the caller-experience tests (ux.test.js). lib/browser.js launches the
// one configuration the call tests need; these tests also need two fake cameras (to switch
// cameras mid-call), a browser that DENIES camera/microphone (no auto-accepting fake UI), and a
// host name that is not a secure context. Same TESTING.md flags otherwise.

import fs from "node:fs";
import { chromium } from "playwright-core";

import { CHROMIUM } from "../lib/browser.js";

/** TESTING.md's flags, without the two media flags each launch chooses itself. */
const BASE_FLAGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--allow-loopback-in-peer-connection",
];

/** The host name that maps to 127.0.0.1 but is not "potentially trustworthy" (http, not localhost). */
export const INSECURE_HOST = "call.insecure.test";

/**
 * Playwright passes one `--disable-features=...` switch and Chromium honours only one, so ours
 * (WebRtcHideLocalIpsWithMdns, TESTING.md) must be merged into Playwright's, read from the
 * command line of a browser it launched (our child, found in /proc). Same method as
 * lib/browser.js, which does not export it.
 */
let disableFeaturesArg = null;
async function playwrightDisableFeaturesArg() {
  if (disableFeaturesArg) return disableFeaturesArg;
  const probe = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: BASE_FLAGS, timeout: 30_000 });
  try {
    for (const pid of fs.readdirSync("/proc").filter((d) => /^\d+$/.test(d))) {
      let stat;
      let argv;
      try {
        stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
        argv = fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
      } catch {
        continue;
      }
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      if (ppid !== process.pid || !argv.includes("--remote-debugging-pipe")) continue;
      const arg = argv.find((a) => a.startsWith("--disable-features="));
      if (arg) {
        disableFeaturesArg = arg;
        return arg;
      }
    }
  } finally {
    await probe.close();
  }
  throw new Error("could not find Playwright's --disable-features switch on the launched Chromium");
}

/**
 * Launches headless Chromium for these tests.
 * @param {object} o
 * @param {number} [o.cameras] fake cameras (Chromium's fake capture `device-count`)
 * @param {boolean} [o.allowMedia] true: the fake permission UI accepts every camera/microphone
 *     request; false: `--deny-permission-prompts` refuses them (NotAllowedError)
 * @returns {Promise<import("playwright-core").Browser>}
 */
export async function launchUxBrowser({ cameras = 2, allowMedia = true } = {}) {
  const defaultArg = await playwrightDisableFeaturesArg();
  const args = [
    ...BASE_FLAGS,
    `--use-fake-device-for-media-stream=device-count=${cameras}`,
    allowMedia ? "--use-fake-ui-for-media-stream" : "--deny-permission-prompts",
    `--host-resolver-rules=MAP ${INSECURE_HOST} 127.0.0.1 , MAP * ~NOTFOUND , EXCLUDE localhost , EXCLUDE 127.0.0.1`,
    `${defaultArg},WebRtcHideLocalIpsWithMdns`,
  ];
  return chromium.launch({ executablePath: CHROMIUM, headless: true, ignoreDefaultArgs: [defaultArg], args, timeout: 30_000 });
}
