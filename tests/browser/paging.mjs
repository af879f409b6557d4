// The list in pages of 20 (tests/api/browser.rs adds 23 restaurants first): Next, Previous,
// Last and First, each page checked like every other.
import { BASE, assert, run } from "./lib.mjs";

const pageLabel = async (page) => (await page.locator(".pagination [aria-current=page]").textContent()).trim();

await run(async (ctx) => {
  const page = await ctx.newPage();

  ctx.begin("page 1");
  await page.goto(`${BASE}/`);
  await ctx.checkPage(page, "index-page-1");
  const rows = page.locator("tbody tr");
  assert.equal(await rows.count(), 20);
  assert.match(await pageLabel(page), /^Page 1 of 2$/);
  const firstOnPage1 = (await rows.first().locator("a").first().textContent()).trim();

  ctx.begin("Next");
  await Promise.all([page.waitForNavigation(), page.getByRole("link", { name: /Next/ }).click()]);
  await ctx.checkPage(page, "index-page-2");
  assert.match(await pageLabel(page), /^Page 2 of 2$/);
  assert.equal(await rows.count(), 3);
  assert.equal(await page.getByRole("link", { name: /Next/ }).count(), 0, "no Next link on the last page");

  ctx.begin("Previous");
  await Promise.all([page.waitForNavigation(), page.getByRole("link", { name: /Previous/ }).click()]);
  assert.match(await pageLabel(page), /^Page 1 of 2$/);
  assert.equal((await rows.first().locator("a").first().textContent()).trim(), firstOnPage1);

  ctx.begin("Last, then First");
  await Promise.all([page.waitForNavigation(), page.getByRole("link", { name: "Last" }).click()]);
  assert.match(await pageLabel(page), /^Page 2 of 2$/);
  await Promise.all([page.waitForNavigation(), page.getByRole("link", { name: "First" }).click()]);
  assert.match(await pageLabel(page), /^Page 1 of 2$/);
  await ctx.checkPage(page, "index-first");
});
