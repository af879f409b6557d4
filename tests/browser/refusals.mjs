// Each refusal of a review says what is wrong and keeps what was typed: a text file named
// .png, a missing rating (the browser's `required` removed), a 9 MiB photo with script on (the
// page's own check) and off (the server's 413 page).
import { BASE, addRestaurant, assert, openReviewForm, run } from "./lib.mjs";

const NINE_MIB = Buffer.alloc(9 * 1024 * 1024, 0x41);
NINE_MIB.set([0xff, 0xd8, 0xff, 0xe0]);

async function fillReview(page, { rating = 5 } = {}) {
  await openReviewForm(page);
  await page.fill("#user_name", "Cleo");
  if (rating) await page.click(`label[for=rating${rating}]`);
  await page.fill("#review_text", "Typed with care.");
}

async function assertTypedFieldsKept(page, { rating = "5" } = {}) {
  assert.equal(await page.inputValue("#user_name"), "Cleo");
  assert.equal(await page.inputValue("#review_text"), "Typed with care.");
  if (rating) assert.ok(await page.isChecked(`#rating${rating}`), `rating ${rating} is still chosen`);
}

const submit = "form[action^='/review/'] button[type=submit]";

await run(async (ctx) => {
  const page = await ctx.newPage();
  const restaurantUrl = await addRestaurant(ctx, page, `Refusals ${ctx.unique}`);

  ctx.begin("a text file named .png");
  await page.goto(restaurantUrl);
  await fillReview(page);
  await page.setInputFiles("#reviewImage", { name: "menu.png", mimeType: "image/png", buffer: Buffer.from("just some text, not a picture\n") });
  await Promise.all([page.waitForNavigation(), page.click(submit)]);
  await ctx.checkPage(page, "refused-not-a-photo");
  assert.ok(await page.locator(".alert-danger").isVisible());
  assert.match(await page.locator("#reviewImage ~ .invalid-feedback").textContent(), /\S/);
  await assertTypedFieldsKept(page);

  ctx.begin("no rating, the required attribute removed by script");
  await page.goto(restaurantUrl);
  await fillReview(page, { rating: null });
  await page.evaluate(() => document.querySelectorAll("input[name=rating]").forEach((r) => r.removeAttribute("required")));
  await Promise.all([page.waitForNavigation(), page.click(submit)]);
  await ctx.checkPage(page, "refused-no-rating");
  assert.match(await page.locator("#rating-error").textContent(), /rating/i);
  await assertTypedFieldsKept(page, { rating: null });
  assert.equal(await page.locator("article").count(), 0, "nothing stored");

  ctx.begin("a 9 MiB photo with script on: the page's check stops it, nothing is sent");
  await page.goto(restaurantUrl);
  await fillReview(page);
  let posted = false;
  page.on("request", (request) => { if (request.method() === "POST") posted = true; });
  await page.setInputFiles("#reviewImage", { name: "huge.jpg", mimeType: "image/jpeg", buffer: NINE_MIB });
  await page.click(submit);
  await page.waitForTimeout(300);
  assert.equal(posted, false, "the form was not sent");
  assert.equal(page.url(), restaurantUrl);
  assert.match(await page.locator("#reviewImage").evaluate((i) => i.validationMessage), /too big/);
  await assertTypedFieldsKept(page);
  await ctx.checkPage(page, "refused-too-big-script");

  ctx.begin("a 9 MiB photo with script off: the server's 413 page");
  const plain = await ctx.newPage({ javaScriptEnabled: false });
  await plain.goto(restaurantUrl);
  await fillReview(plain);
  await plain.setInputFiles("#reviewImage", { name: "huge.jpg", mimeType: "image/jpeg", buffer: NINE_MIB });
  const [response] = await Promise.all([plain.waitForNavigation(), plain.click(submit)]);
  assert.equal(response.status(), 413);
  await ctx.checkPage(plain, "refused-too-big-no-script");
  assert.match(await plain.locator("main").textContent(), /too big/i);
  assert.equal(await page.locator("article").count(), 0, "nothing stored");

  ctx.begin("the 413 page keeps the typed fields");
  await assertTypedFieldsKept(plain);
});
