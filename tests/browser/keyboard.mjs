// A review with the keyboard alone: Tab reaches the first star, the arrow keys move the way
// they point (→ from the first star twice chooses 3), every star has a name a screen reader
// reads ("3 stars") in a named group, focus is visible, Enter sends the form.
import { BASE, addRestaurant, assert, flashText, run } from "./lib.mjs";

// Tabs until `predicate(document.activeElement)` holds, at most `limit` times.
async function tabTo(page, what, predicate, limit = 30) {
  for (let i = 0; i < limit; i += 1) {
    await page.keyboard.press("Tab");
    if (await page.evaluate(predicate)) return;
  }
  assert.fail(`Tab never reached ${what}`);
}

const focusedId = (page) => page.evaluate(() => document.activeElement.id);

await run(async (ctx) => {
  const page = await ctx.newPage();
  const url = await addRestaurant(ctx, page, `Keys ${ctx.unique}`);
  await page.goto(url);

  ctx.begin("Tab to the form, open it with Enter, type a name");
  await tabTo(page, "the review form's button", () => document.activeElement.matches("details.review-form > summary"));
  await page.keyboard.press("Enter");
  await tabTo(page, "the name field", () => document.activeElement.id === "user_name");
  await page.keyboard.type("Dee");

  ctx.begin("the stars are a named group of named radios (the form is open now)");
  const group = page.getByRole("group", { name: /Rating/ });
  assert.equal(await group.count(), 1);
  for (let n = 1; n <= 5; n += 1) {
    assert.equal(await group.getByRole("radio", { name: n === 1 ? "1 star" : `${n} stars`, exact: true }).count(), 1, `star ${n}`);
  }

  ctx.begin("Tab lands on the first star; → twice chooses 3 stars");
  await page.keyboard.press("Tab");
  assert.equal(await focusedId(page), "rating1", "Tab lands on the first star");
  const outline = await page.evaluate(() => {
    const label = document.querySelector("label[for=rating1]");
    const style = getComputedStyle(label);
    return { style: style.outlineStyle, width: parseFloat(style.outlineWidth) };
  });
  assert.ok(outline.style !== "none" && outline.width >= 2, `focus is visible on the star: ${JSON.stringify(outline)}`);
  await page.keyboard.press("ArrowRight");
  await page.keyboard.press("ArrowRight");
  assert.equal(await focusedId(page), "rating3");
  assert.ok(await page.isChecked("#rating3"), "→ twice from the first star chooses 3");
  const gold = await page.evaluate(() => [1, 2, 3, 4, 5].map((n) => getComputedStyle(document.querySelector(`label[for=rating${n}]`)).color));
  assert.equal(new Set(gold.slice(0, 3)).size, 1, "stars 1 to 3 are drawn alike");
  assert.notEqual(gold[2], gold[3], "stars 4 and 5 are drawn unfilled");
  await page.keyboard.press("ArrowLeft");
  assert.ok(await page.isChecked("#rating2"), "← lowers the rating");
  await page.keyboard.press("ArrowRight");
  assert.ok(await page.isChecked("#rating3"));
  await ctx.checkPage(page, "keyboard-stars");

  ctx.begin("Tab on to the text and the button; Enter sends the review");
  await page.keyboard.press("Tab");
  assert.equal(await focusedId(page), "review_text", "Tab leaves the group for the text");
  await page.keyboard.type("Only keys were used.");
  await tabTo(page, "the save button", () => document.activeElement.matches("button[type=submit]"));
  await Promise.all([page.waitForNavigation(), page.keyboard.press("Enter")]);
  assert.equal(page.url(), url);
  assert.match(await flashText(page), /Review added/);
  assert.ok(await page.locator("#summary").getByText("3.0").isVisible());
  await ctx.checkPage(page, "keyboard-reviewed");

  ctx.begin("Space on a star also chooses it");
  await page.goto(url);
  await page.focus("details.review-form > summary");
  await page.keyboard.press("Space");
  await page.focus("#rating1");
  await page.keyboard.press("Space");
  assert.ok(await page.isChecked("#rating1"));
  assert.ok(BASE);
});
