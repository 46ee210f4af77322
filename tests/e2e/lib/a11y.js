// Accessibility checks with axe-core, injected with page.evaluate (the page's CSP blocks
// injected <script> tags, see TESTING.md).

import fs from "node:fs";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const AXE_SOURCE = fs.readFileSync(require.resolve("axe-core/axe.min.js"), "utf8");

/**
 * Runs axe-core (WCAG 2.x A and AA rules) on the page as it is now. Returns the violations
 * whose impact is serious or critical, each as `rule (impact): n nodes [selectors]`.
 * @param {import("./browser.js").Caller} c
 */
export async function seriousViolations(c) {
  await c.page.evaluate(AXE_SOURCE);
  const result = await c.page.evaluate(async () => {
    const r = await window.axe.run(document, {
      runOnly: { type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"] },
      resultTypes: ["violations"],
    });
    return {
      rulesPassed: r.passes.length,
      list: r.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, targets: v.nodes.map((n) => n.target.join(" ")) })),
    };
  });
  c.write(`[axe] ${result.rulesPassed} rules passed, ${result.list.length} violated`);
  if (result.rulesPassed < 10) throw new Error(`axe-core checked almost nothing (${result.rulesPassed} rules passed)`);
  const violations = result.list;
  for (const v of violations) c.write(`[axe] ${v.impact} ${v.id}: ${v.help} -> ${v.targets.join(", ")}`);
  return violations.filter((v) => v.impact === "serious" || v.impact === "critical").map((v) => `${v.id} (${v.impact}): ${v.targets.length} node(s) [${v.targets.slice(0, 3).join(", ")}] ${v.help}`);
}
