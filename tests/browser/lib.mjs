// Shared by the browser flows: one headless Chromium per node process (Debian's chromium,
// driven by playwright-core), a page that records console errors, uncaught exceptions and CSP
// violations, the checks every page gets, and a screenshot of a failing step.
//
// A flow is `node tests/browser/<flow>.mjs <base-url> <artefact-dir>`; it exits 0 when every
// step passed. tests/api/browser.rs starts the app and runs them.

import assert from "node:assert/strict";
import { mkdirSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { chromium } from "playwright-core";

export { assert };

export const VIEWPORTS = {
  desktop: { width: 1280, height: 800 },
  phone: { width: 390, height: 844 },
};

const [base, artefacts] = process.argv.slice(2);
if (!base || !artefacts) {
  console.error("usage: node <flow>.mjs <base-url> <artefact-dir>");
  process.exit(2);
}
export const BASE = base.replace(/\/$/, "");
export const ARTEFACTS = artefacts;
mkdirSync(ARTEFACTS, { recursive: true });
const FLOW = path.basename(process.argv[1], ".mjs");
// axe-core (pinned in package.json), evaluated in the page through the driver rather than added
// as a <script>, which the site's CSP (script-src 'self') would rightly block.
const AXE_SOURCE = readFileSync(createRequire(import.meta.url).resolve("axe-core/axe.min.js"), "utf8");
const WCAG_21_AA = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"];
// Screenshots of every page checked, for people to look at: BROWSER_SCREENSHOTS=1.
const KEEP_SCREENSHOTS = process.env.BROWSER_SCREENSHOTS === "1";

// Runs `steps(ctx)` at each viewport in one browser; prints a line per passed step and, for a
// failure, the error and where its screenshot is.
export async function run(steps, { viewports = Object.keys(VIEWPORTS) } = {}) {
  const started = Date.now();
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    // Containers run the tests as root, where Chromium's sandbox cannot start.
    args: ["--no-sandbox", "--disable-dev-shm-usage"],
  });
  let failed = false;
  try {
    for (const viewport of viewports) {
      const ctx = new FlowContext(browser, viewport);
      try {
        await steps(ctx);
        ctx.assertClean();
        console.log(`ok   ${FLOW} ${viewport} (${ctx.pagesChecked} pages checked)`);
      } catch (error) {
        failed = true;
        console.log(`FAIL ${FLOW} ${viewport} at step "${ctx.step}": ${error.stack || error}`);
        for (const page of ctx.openPages()) {
          const file = path.join(ARTEFACTS, `${FLOW}-${viewport}${ctx.openPages().length > 1 ? `-${ctx.pageIndex(page)}` : ""}.png`);
          try {
            await page.screenshot({ path: file, fullPage: true });
            console.log(`     screenshot of the failing step: ${file}`);
          } catch (shotError) {
            console.log(`     no screenshot (${shotError.message})`);
          }
        }
      } finally {
        await ctx.close();
      }
    }
  } finally {
    await browser.close();
  }
  console.log(`${FLOW}: ${failed ? "FAILED" : "passed"} in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  process.exit(failed ? 1 : 0);
}

class FlowContext {
  constructor(browser, viewport) {
    this.browser = browser;
    this.viewport = viewport;
    this.size = VIEWPORTS[viewport];
    this.step = "start";
    this.problems = [];
    this.contexts = [];
    this.pagesChecked = 0;
    this.unique = `${viewport}-${Date.now().toString(36)}`;
  }

  // A new browser context (cookies of its own) and page at this flow's viewport, listening for
  // console errors, uncaught exceptions and CSP violations. `options` go to newContext
  // (javaScriptEnabled, timezoneId, ...).
  async newPage(options = {}) {
    const context = await this.browser.newContext({
      viewport: this.size,
      deviceScaleFactor: 1,
      isMobile: this.viewport === "phone",
      hasTouch: this.viewport === "phone",
      locale: "en-GB",
      // No colour transitions half-way through a check.
      reducedMotion: "reduce",
      ...options,
    });
    context.setDefaultTimeout(10_000);
    this.contexts.push(context);
    // Reported through a binding, so violations are seen with and without the page's script.
    await context.exposeBinding("__reportCspViolation", ({ page }, text) => {
      this.problems.push(`CSP violation on ${page.url()}: ${text}`);
    });
    await context.addInitScript(() => {
      document.addEventListener("securitypolicyviolation", (e) => {
        window.__reportCspViolation(`${e.violatedDirective} blocked ${e.blockedURI || "inline"} (${e.sourceFile}:${e.lineNumber})`);
      });
    });
    const page = await context.newPage();
    // Where script is off axe-core cannot run (its checks wait on timers): see checkPage.
    page.scriptOff = options.javaScriptEnabled === false;
    page.on("console", (message) => {
      // A refused request (413, 422...) is the point of some steps; the page must not be
      // broken by it, so only errors the page itself raises count.
      if (message.type() === "error" && !/Failed to load resource: the server responded with a status of (4\d\d)/.test(message.text())) {
        this.problems.push(`console error on ${page.url()}: ${message.text()}`);
      }
    });
    page.on("pageerror", (error) => this.problems.push(`uncaught exception on ${page.url()}: ${error.message}`));
    return page;
  }

  openPages() {
    return this.contexts.flatMap((c) => c.pages()).filter((p) => !p.isClosed());
  }

  pageIndex(page) {
    return this.openPages().indexOf(page);
  }

  async close() {
    for (const context of this.contexts) await context.close().catch(() => {});
  }

  // Names the step for the report; later assertions are reported as failing in it.
  begin(step) {
    this.step = step;
  }

  assertClean() {
    assert.deepEqual(this.problems, [], "no console errors, uncaught exceptions or CSP violations");
  }

  // What every page visited must satisfy: no console errors or CSP violations so far, no
  // horizontal scrolling (at this size, and at 320 px on a phone, 1440 px on a desktop), the skip
  // link first.
  async checkPage(page, name) {
    this.pagesChecked += 1;
    await page.waitForLoadState("load");
    this.assertClean();
    await assertNoHorizontalScroll(page, `${name} at ${this.size.width} px`);
    if (this.viewport === "phone") {
      await page.setViewportSize({ width: 320, height: 640 });
      await assertNoHorizontalScroll(page, `${name} at 320 px`);
      if (KEEP_SCREENSHOTS) await this.screenshot(page, `${name}-320`);
      await page.setViewportSize(this.size);
    } else {
      await page.setViewportSize({ width: 1440, height: 900 });
      await assertNoHorizontalScroll(page, `${name} at 1440 px`);
      await page.setViewportSize(this.size);
    }
    const first = await page.evaluate(() => {
      const focusable = document.querySelector("a[href], button, input, select, textarea, summary, [tabindex]:not([tabindex='-1'])");
      return focusable && focusable.textContent.trim();
    });
    assert.equal(first, "Skip to content", `${name}: the skip link is the first focusable element`);
    await assertAccessible(page.scriptOff ? await this.scriptedCopy(page) : page, `${name} at ${this.size.width} px`);
    if (KEEP_SCREENSHOTS) await this.screenshot(page, name);
  }

  // The page's HTML as it is now, at its address, in a page of its own with script on (styles
  // and images load from the app as usual), for checks that need script.
  async scriptedCopy(page) {
    const [url, html] = [page.url(), await page.content()];
    const copy = await (await this.browser.newContext({ viewport: this.size, deviceScaleFactor: 1, reducedMotion: "reduce" })).newPage();
    this.contexts.push(copy.context());
    await copy.route(url, (route) => route.fulfill({ status: 200, contentType: "text/html; charset=utf-8", body: html }));
    await copy.goto(url);
    return copy;
  }

  async screenshot(page, name) {
    const file = path.join(ARTEFACTS, "pages", `${FLOW}-${this.viewport}-${name.replace(/[^a-z0-9]+/gi, "-")}.png`);
    mkdirSync(path.dirname(file), { recursive: true });
    await page.screenshot({ path: file, fullPage: true });
  }
}

// No WCAG 2.1 A or AA violation that axe-core finds on the page as it is now.
export async function assertAccessible(page, what) {
  if (!(await page.evaluate(() => typeof window.axe === "object"))) await page.evaluate(AXE_SOURCE);
  const violations = await page.evaluate(async (tags) => {
    const result = await window.axe.run(document, { runOnly: { type: "tag", values: tags }, resultTypes: ["violations"] });
    return result.violations.map((v) => `${v.id} (${v.impact}): ${v.help}; ${v.nodes.slice(0, 3).map((n) => `${n.target.join(" ")}: ${n.failureSummary.replace(/\s+/g, " ")}`).join(" | ")}`);
  }, WCAG_21_AA);
  assert.deepEqual(violations, [], `${what}: WCAG 2.1 AA violations found by axe-core`);
}

export async function assertNoHorizontalScroll(page, what) {
  const { scrollWidth, innerWidth, widest } = await page.evaluate(() => {
    // The element reaching furthest right, to say what overflows.
    let widest = "";
    let right = window.innerWidth;
    for (const el of document.body.querySelectorAll("*")) {
      const box = el.getBoundingClientRect();
      if (box.right > right + 0.5) {
        right = box.right;
        widest = `${el.tagName.toLowerCase()}.${[...el.classList].join(".")} (right edge ${Math.round(box.right)} px)`;
      }
    }
    return { scrollWidth: document.documentElement.scrollWidth, innerWidth: window.innerWidth, widest };
  });
  assert.ok(scrollWidth <= innerWidth, `${what}: the page is ${scrollWidth} px wide in a ${innerWidth} px window; widest: ${widest}`);
}

// Adds a restaurant through the form and returns its page's URL (the flash is checked there).
export async function addRestaurant(ctx, page, name, { address = "1 Main Street", description = "Seasonal food, friendly staff." } = {}) {
  await page.goto(`${BASE}/create`);
  await page.fill("#restaurant_name", name);
  await page.fill("#street_address", address);
  await page.fill("#description", description);
  await Promise.all([page.waitForURL(/\/\d+\/$/), page.click("button[type=submit]")]);
  return page.url();
}

// Opens the review form on a details page (it folds away behind "Add new review").
export async function openReviewForm(page) {
  const form = page.locator("details.review-form");
  if (!(await form.evaluate((d) => d.open))) await page.click("details.review-form > summary");
}

export async function flashText(page) {
  const flash = page.locator("[role=status]");
  return (await flash.count()) ? (await flash.first().textContent()).trim() : null;
}
