// Moderation: a visitor reports a review (no script needed: a <details> with a form); the
// person at the machine signs in with the one-time link the app printed, finds the review in
// the queue and hides it; the restaurant's page no longer shows it. Every moderation page is
// checked like the others (no sideways scroll at 390 and 320 px, no console or CSP errors,
// axe-core's WCAG 2.1 AA rules). tests/api/browser.rs passes one sign-in link per viewport in
// SIGN_IN_LINKS.
import { BASE, addRestaurant, assert, flashText, openReviewForm, run, VIEWPORTS } from "./lib.mjs";

const links = (process.env.SIGN_IN_LINKS || "").split(" ").filter(Boolean);
assert.ok(links.length >= Object.keys(VIEWPORTS).length, "one sign-in link per viewport");
let nextLink = 0;

await run(async (ctx) => {
  const visitor = await ctx.newPage();
  const restaurantUrl = await addRestaurant(ctx, visitor, `Moderated Diner ${ctx.unique}`);
  const spam = `Cheap watches at example dot com ${ctx.unique}`;

  ctx.begin("a visitor reviews, then another reports the review");
  await openReviewForm(visitor);
  await visitor.fill("#user_name", "Spammer");
  await visitor.click("label[for=rating5]");
  await visitor.fill("#review_text", spam);
  await Promise.all([visitor.waitForNavigation(), visitor.click("form[action^='/review/'] button[type=submit]")]);
  const reviewArticle = visitor.locator("article", { hasText: spam });
  await reviewArticle.locator("summary.report-toggle").click();
  await ctx.checkPage(visitor, "details-report-open");
  await reviewArticle.getByLabel("Spam or advertising").check();
  await reviewArticle.getByLabel(/Note for the moderators/).fill("An advert, not a review.");
  await Promise.all([visitor.waitForNavigation(), reviewArticle.getByRole("button", { name: "Send report" }).click()]);
  assert.equal(visitor.url(), restaurantUrl);
  assert.match(await flashText(visitor), /A moderator will look at the review/);
  assert.ok(await visitor.getByText(spam).isVisible(), "a reported review stays until a moderator acts");

  ctx.begin("the report form alone, refusing a report without a reason");
  const reviewId = (await reviewArticle.getAttribute("id")).replace("review-", "");
  await visitor.goto(`${BASE}/report/${reviewId}`);
  await ctx.checkPage(visitor, "report");

  ctx.begin("the moderator signs in with the printed link");
  const moderator = await ctx.newPage();
  await moderator.goto(links[nextLink++]);
  await ctx.checkPage(moderator, "moderate-sign-in");
  await Promise.all([moderator.waitForURL(`${BASE}/moderate/`), moderator.getByRole("button", { name: "Sign in as a moderator" }).click()]);
  assert.match(await flashText(moderator), /Signed in as a moderator/);
  await ctx.checkPage(moderator, "moderate-queue");

  ctx.begin("the moderator hides the reported review");
  const queued = moderator.locator(`#moderate-review-${reviewId}`).first();
  assert.ok(await queued.getByText("An advert, not a review.").isVisible(), "the report's note shows in the queue");
  await Promise.all([moderator.waitForNavigation(), queued.getByRole("button", { name: "Hide" }).click()]);
  assert.match(await flashText(moderator), /Review hidden/);
  await ctx.checkPage(moderator, "moderate-after-hide");

  ctx.begin("the restaurant's page no longer shows it");
  await visitor.goto(restaurantUrl);
  assert.equal(await visitor.getByText(spam).count(), 0);
  assert.ok(await visitor.getByText("No ratings yet").isVisible(), "the count and average left with it");
  await ctx.checkPage(visitor, "details-after-hide");

  ctx.begin("the audit log and a restaurant's edit page");
  await moderator.goto(`${BASE}/moderate/log`);
  assert.ok(await moderator.getByText("hide review").first().isVisible());
  await ctx.checkPage(moderator, "moderate-log");
  const restaurantId = new URL(restaurantUrl).pathname.replaceAll("/", "");
  await moderator.goto(`${BASE}/moderate/restaurants/${restaurantId}`);
  await ctx.checkPage(moderator, "moderate-restaurant");
});
