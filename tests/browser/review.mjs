// Reviewing: a phone photo carrying EXIF orientation 6 comes out upright, opens in the in-page
// viewer (Esc closes it, focus comes back), the stars and the average follow each review, the
// flash says so, and times show in the reader's time zone.
import { readFileSync } from "node:fs";
import { BASE, addRestaurant, assert, flashText, openReviewForm, run } from "./lib.mjs";

const PHONE_PHOTO = readFileSync(new URL("../api/fixtures/phone-photo.jpg", import.meta.url));

async function postReview(page, { name, rating, text, photo }) {
  await openReviewForm(page);
  await page.fill("#user_name", name);
  await page.click(`label[for=rating${rating}]`);
  await page.fill("#review_text", text);
  if (photo) await page.setInputFiles("#reviewImage", photo);
  await Promise.all([page.waitForNavigation(), page.click("form[action^='/review/'] button[type=submit]")]);
}

await run(async (ctx) => {
  // A reader in Tokyo: the server's UTC times are shown in their zone.
  const page = await ctx.newPage({ timezoneId: "Asia/Tokyo" });
  const restaurantUrl = await addRestaurant(ctx, page, `Photo Place ${ctx.unique}`);

  ctx.begin("a review with a phone photo (EXIF orientation 6)");
  await postReview(page, {
    name: "Ana",
    rating: 4,
    text: "Lovely soup.",
    photo: { name: "IMG_0001.JPG", mimeType: "image/jpeg", buffer: PHONE_PHOTO },
  });
  assert.equal(page.url(), restaurantUrl, "back at the restaurant's top, not at the list");
  await ctx.checkPage(page, "details-reviewed");
  assert.match(await flashText(page), /Review added/);
  const summary = page.locator("#summary");
  assert.ok(await summary.getByText("4.0").isVisible(), "the new average shows");
  assert.ok(await summary.getByText("1 review").isVisible());
  assert.equal(await summary.getByRole("img", { name: /4(\.0)? (out of 5 )?stars?/i }).count(), 1);
  const inView = await summary.evaluate((el) => el.getBoundingClientRect().bottom <= window.innerHeight);
  assert.ok(inView, "the summary with the average is in view after the redirect");

  ctx.begin("the thumbnail is upright and the viewer opens and closes");
  const thumbnail = page.locator("img.review-photo");
  await thumbnail.scrollIntoViewIfNeeded();
  await page.waitForFunction(() => document.querySelector("img.review-photo").complete);
  const thumb = await thumbnail.evaluate((img) => ({ w: img.naturalWidth, h: img.naturalHeight, alt: img.alt }));
  assert.ok(thumb.w > 0 && thumb.w < thumb.h, `upright thumbnail, got ${thumb.w}×${thumb.h}`);
  assert.equal(thumb.alt, "Photo from Ana's review");
  await page.click("a.photo-link");
  const dialog = page.locator("dialog.photo-viewer");
  await dialog.waitFor({ state: "visible" });
  assert.equal(page.url(), restaurantUrl, "the photo opened in the page, not in a tab");
  const full = dialog.locator("img");
  await page.waitForFunction(() => document.querySelector("dialog.photo-viewer img").complete);
  const shown = await full.evaluate((img) => ({ w: img.naturalWidth, h: img.naturalHeight, alt: img.alt, fits: img.getBoundingClientRect().bottom <= window.innerHeight && img.getBoundingClientRect().right <= window.innerWidth }));
  assert.ok(shown.w > 0 && shown.w < shown.h, `upright photo, got ${shown.w}×${shown.h}`);
  assert.equal(shown.alt, "Photo from Ana's review");
  assert.ok(shown.fits, "the photo fits in the window");
  await ctx.checkPage(page, "photo-viewer");
  await page.keyboard.press("Escape");
  await dialog.waitFor({ state: "hidden" });
  assert.ok(await page.evaluate(() => document.activeElement.classList.contains("photo-link")), "focus is back on the thumbnail");
  // And the close button.
  await page.keyboard.press("Enter");
  await dialog.waitFor({ state: "visible" });
  await dialog.getByRole("button", { name: "Close the photo" }).click();
  await dialog.waitFor({ state: "hidden" });

  ctx.begin("the review's time is in the reader's zone, with the exact time on hover");
  const time = page.locator("article time");
  const { text, title, iso } = await time.evaluate((t) => ({ text: t.textContent, title: t.title, iso: t.dateTime }));
  assert.doesNotMatch(text, /UTC/);
  const tokyo = new Intl.DateTimeFormat("en-GB", { timeZone: "Asia/Tokyo", dateStyle: "medium", timeStyle: "short" }).format(new Date(iso));
  assert.equal(text, tokyo);
  assert.match(title, /Japan Standard Time|GMT\+9|JST/, `exact time with its zone: ${title}`);

  ctx.begin("a second review moves the average");
  await postReview(page, { name: "Ben", rating: 2, text: "Cold chips." });
  assert.match(await flashText(page), /Review added/);
  assert.ok(await summary.getByText("3.0").isVisible());
  assert.ok(await summary.getByText("2 reviews").isVisible());
  assert.equal(await page.locator("article").count(), 2);
  await ctx.checkPage(page, "details-two-reviews");

  ctx.begin("without script the photo link still opens the photo");
  const plain = await ctx.newPage({ javaScriptEnabled: false });
  await plain.goto(restaurantUrl);
  const href = await plain.locator("a.photo-link").getAttribute("href");
  const response = await plain.request.get(new URL(href, BASE).href);
  assert.equal(response.status(), 200);
  assert.match(response.headers()["content-type"], /^image\//);
  assert.match(await plain.locator("article time").first().textContent(), /UTC$/, "the server's UTC label stands in");
});
