// Accessibility and screenshot helpers for ux.test.js: axe-core results per page state (kept
// for the report in out/ux-axe.json), and screenshots at phone and desktop sizes with the
// invite token hidden.

import fs from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";

import { OUT_DIR } from "../lib/harness.js";

const require = createRequire(import.meta.url);
const AXE_SOURCE = fs.readFileSync(require.resolve("axe-core/axe.min.js"), "utf8");

/** Where the test run writes its screenshots (docs/screenshots/ holds the committed copies). */
export const SHOTS_DIR = path.join(OUT_DIR, "screenshots");
/** Phone portrait and desktop. */
export const SIZES = [
  { tag: "phone", width: 360, height: 740 },
  { tag: "desktop", width: 1280, height: 800 },
];

/** axe results of this run, by state name. */
const axeResults = {};

/**
 * Runs axe-core (WCAG 2.0-2.2 A/AA rules and best practices) on the page as it is now, records
 * the result under `state`, and returns the serious or critical violations as text.
 * Injected with page.evaluate: the page's CSP blocks injected <script> tags (TESTING.md).
 * @param {import("../lib/browser.js").Caller} c
 * @param {string} state
 * @returns {Promise<string[]>}
 */
export async function axeCheck(c, state) {
  if (!(await c.page.evaluate(() => typeof window.axe === "object"))) await c.page.evaluate(AXE_SOURCE);
  const r = await c.page.evaluate(async () => {
    const res = await window.axe.run(document, {
      runOnly: { type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa", "best-practice"] },
      resultTypes: ["violations"],
    });
    return {
      passes: res.passes.length,
      violations: res.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, targets: v.nodes.map((n) => n.target.join(" ")) })),
    };
  });
  if (r.passes < 10) throw new Error(`axe-core checked almost nothing in state ${state} (${r.passes} rules passed)`);
  axeResults[state] = { rulesPassed: r.passes, violations: r.violations.map((v) => `${v.impact} ${v.id} (${v.targets.length})`) };
  fs.writeFileSync(path.join(OUT_DIR, "ux-axe.json"), `${JSON.stringify(axeResults, null, 2)}\n`);
  c.write(`[axe ${state}] ${r.passes} rules passed, ${r.violations.length} violated`);
  for (const v of r.violations) c.write(`[axe ${state}] ${v.impact} ${v.id}: ${v.help} -> ${v.targets.join(", ")}`);
  return r.violations
    .filter((v) => v.impact === "serious" || v.impact === "critical")
    .map((v) => `${state}: ${v.id} (${v.impact}) ${v.targets.length} node(s) [${v.targets.slice(0, 3).join(", ")}] ${v.help}`);
}

/**
 * Screenshots the viewport at each of {@link SIZES} as `<name>-<tag>.png`, then restores the
 * page's viewport. The invite field's token is replaced by dots for the picture (it is a
 * secret, and screenshots are test output) and put back afterwards.
 * @param {import("../lib/browser.js").Caller} c
 * @param {string} name
 * @param {{settleMs?: number, scrollTo?: string}} [o] `scrollTo`: a selector scrolled to the top
 *     of the screen when it does not fit from the top of the page (as the page itself does)
 */
export async function screenshots(c, name, { settleMs = 400, scrollTo = null } = {}) {
  fs.mkdirSync(SHOTS_DIR, { recursive: true });
  const page = c.page;
  const original = page.viewportSize();
  await page.evaluate(() => {
    const i = document.querySelector("#invite-link");
    if (i && i.value) {
      window.__realInvite = i.value;
      i.value = `${i.value.replace(/#.*$/, "")}#${"•".repeat(16)}`;
    }
  });
  const files = [];
  try {
    for (const s of SIZES) {
      await page.setViewportSize({ width: s.width, height: s.height });
      await page.evaluate((sel) => {
        window.scrollTo(0, 0);
        const el = sel && document.querySelector(sel);
        if (el && el.getBoundingClientRect().bottom > window.innerHeight) el.scrollIntoView({ block: "start" });
      }, scrollTo);
      await page.waitForTimeout(settleMs);
      const file = path.join(SHOTS_DIR, `${name}-${s.tag}.png`);
      await page.screenshot({ path: file, caret: "hide" });
      files.push(file);
    }
  } finally {
    await page.evaluate(() => {
      const i = document.querySelector("#invite-link");
      if (i && window.__realInvite) i.value = window.__realInvite;
      delete window.__realInvite;
    });
    if (original) await page.setViewportSize(original);
  }
  return files;
}
