// Adding a restaurant, the site's chrome on every page: the navbar (current page, contrast, the
// folded menu on a phone), the skip link, the flash after adding, the error pages.
import { BASE, addRestaurant, assert, flashText, run } from "./lib.mjs";

// WCAG contrast of the link's colour on the header's background.
async function navContrasts(page) {
  return page.evaluate(() => {
    const rgb = (s) => s.match(/[\d.]+/g).map(Number);
    const luminance = ([r, g, b]) =>
      [r, g, b].map((c) => { c /= 255; return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4; })
        .reduce((sum, c, i) => sum + c * [0.2126, 0.7152, 0.0722][i], 0);
    const background = rgb(getComputedStyle(document.querySelector(".site-header")).backgroundColor);
    return [...document.querySelectorAll(".site-header a")].filter((a) => a.offsetParent).map((a) => {
      const [r, g, b, alpha = 1] = rgb(getComputedStyle(a).color);
      const shown = [r, g, b].map((c, i) => c * alpha + background[i] * (1 - alpha));
      const [light, dark] = [luminance(shown), luminance(background)].sort((x, y) => y - x);
      return { text: a.textContent.trim(), ratio: (light + 0.05) / (dark + 0.05) };
    });
  });
}

await run(async (ctx) => {
  const page = await ctx.newPage();

  ctx.begin("the list, with the navbar marking it as the current page");
  await page.goto(`${BASE}/`);
  await ctx.checkPage(page, "index");
  const current = page.locator(".site-header [aria-current=page]:visible");
  if (ctx.viewport === "phone") {
    // Folded away behind the menu button until it is opened.
    assert.equal(await current.count(), 0, "the links are folded into the menu on a phone");
    await page.click("summary.site-menu-toggle");
    await ctx.checkPage(page, "index-menu-open");
  }
  assert.equal(await current.count(), 1);
  assert.equal((await current.textContent()).trim(), "Restaurants");
  const styles = await page.evaluate(() => [...document.querySelectorAll(".site-header .nav-link")].filter((a) => a.offsetParent)
    .map((a) => { const s = getComputedStyle(a); return `${s.fontWeight} ${s.boxShadow}`; }));
  assert.equal(styles.length, 2);
  assert.notEqual(styles[0], styles[1], "the current page's link looks different");
  for (const { text, ratio } of await navContrasts(page)) {
    assert.ok(ratio >= 4.5, `"${text}" has contrast ${ratio.toFixed(2)}:1 on the header, below WCAG AA's 4.5:1`);
  }

  ctx.begin("the skip link is the first Tab stop and moves focus to the content");
  await page.goto(`${BASE}/`);
  await page.keyboard.press("Tab");
  assert.equal(await page.evaluate(() => document.activeElement.textContent.trim()), "Skip to content");
  assert.ok(await page.locator(".skip-link").isVisible(), "the focused skip link is visible");
  if (process.env.BROWSER_SCREENSHOTS === "1") await ctx.screenshot(page, "skip-link-focused");
  await page.keyboard.press("Enter");
  assert.equal(await page.evaluate(() => document.activeElement.id), "content");

  ctx.begin("the add-restaurant page, marked in the navbar");
  if (ctx.viewport === "phone") {
    await page.click("summary.site-menu-toggle");
    await page.click(".site-links-menu >> text=Add restaurant");
  } else {
    await page.click(".site-links-bar >> text=Add restaurant");
  }
  await page.waitForURL(`${BASE}/create`);
  await ctx.checkPage(page, "create");
  assert.equal(await page.locator(".site-header [aria-current=page]").first().textContent(), "Add restaurant");

  ctx.begin("adding a restaurant shows it with a flash message, once");
  const name = `Casa ${ctx.unique}`;
  const url = await addRestaurant(ctx, page, name, { address: "12 Harbour Road" });
  await ctx.checkPage(page, "details-new");
  assert.match(await flashText(page), /^✓?\s*Restaurant added/);
  assert.equal((await page.locator("h1").textContent()).trim(), name);
  assert.ok(await page.getByText("No ratings yet").isVisible());
  await page.reload();
  assert.equal(await flashText(page), null, "the message is not shown again on reload");
  await page.goto(`${BASE}/`);
  assert.ok(await page.getByRole("link", { name, exact: true }).isVisible(), "the new restaurant is in the list");

  ctx.begin("a refused restaurant keeps what was typed");
  await page.goto(`${BASE}/create`);
  await page.fill("#restaurant_name", "No description");
  await page.fill("#street_address", "3 Side Street");
  await page.evaluate(() => document.querySelector("#description").removeAttribute("required"));
  await page.click("button[type=submit]");
  await page.waitForLoadState("load");
  await ctx.checkPage(page, "create-refused");
  assert.ok(await page.getByText("Restaurant not added").isVisible());
  assert.equal(await page.inputValue("#restaurant_name"), "No description");
  assert.equal(await page.inputValue("#street_address"), "3 Side Street");

  ctx.begin("error pages");
  for (const [path, status] of [["/999999/", 404], ["/nothing/here", 404]]) {
    const response = await page.goto(`${BASE}${path}`);
    assert.equal(response.status(), status, path);
    await ctx.checkPage(page, `error-${status}`);
    assert.ok(await page.getByText("Page not found").isVisible());
  }

  ctx.begin("API reference");
  const docs = await page.goto(`${BASE}/api/docs`);
  assert.equal(docs.status(), 200);
  await ctx.checkPage(page, "api-docs");
  assert.ok(await page.getByRole("heading", { name: /GET \/api\/v1\/restaurants$/ }).isVisible());
  assert.ok(url.endsWith("/"));
});
