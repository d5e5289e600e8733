// Swagger UI as a person uses it: open /docs in headless Chromium (Debian's
// package, driven by playwright-core), authorize with a token, try the PATCH
// against the running gateway and Cognito emulator, and check that the page
// shows 200 and that Cognito really changed. Saves a screenshot.
//
// Run by scripts/test-api through `scripts/demo --run`, which sets
// ATTRGATE_DEMO_ENV. Environment:
//   ATTRGATE_CHROMIUM        the browser (default /usr/bin/chromium)
//   ATTRGATE_TEST_ARTIFACTS  where the screenshot goes (default target/test-artifacts)

import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";

import { chromium } from "playwright-core";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const ARTIFACTS = process.env.ATTRGATE_TEST_ARTIFACTS ?? path.join(ROOT, "target", "test-artifacts");
const SCREENSHOT = path.join(ARTIFACTS, "swagger.png");
const OPERATION = "#operations-attributes-updateUserAttributes";
const READ_OPERATION = "#operations-attributes-readUserAttributes";

const envFile = process.env.ATTRGATE_DEMO_ENV;
assert.ok(envFile, "ATTRGATE_DEMO_ENV is not set: run this through scripts/test-api (scripts/demo --run)");
const env = JSON.parse(readFileSync(envFile, "utf8"));

/** What Cognito holds for a user, read with boto3 (not through the gateway). */
function cognitoUser(username) {
  const out = execFileSync(env.python, [path.join(ROOT, "tests/browser/cognito_user.py"), username], {
    encoding: "utf8",
  });
  return JSON.parse(out);
}

let browser;

before(async () => {
  browser = await chromium.launch({
    executablePath: process.env.ATTRGATE_CHROMIUM ?? "/usr/bin/chromium",
    headless: true,
    // No sandbox: CI runs as root. The rest keeps Chromium off the network,
    // which this machine does not have; playwright gives it a fresh profile.
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
});

after(async () => {
  await browser?.close();
});

test("swagger ui authorizes with a bearer token and its PATCH updates cognito", { timeout: 120_000 }, async () => {
  // Arrange
  const before = cognitoUser("bob");
  assert.equal(before.given_name, "Bob");
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const foreign = [];
  page.on("request", (request) => {
    if (!request.url().startsWith(env.base_url) && !request.url().startsWith("data:")) {
      foreign.push(request.url());
    }
  });

  // Act: open /docs (it redirects to /docs/) and authorize.
  await openAuthorized(page);

  // Act: open the PATCH, fill it in (try-it-out is on from the start), execute.
  const operation = page.locator(OPERATION);
  await operation.locator(".opblock-summary").first().click();
  await assertTryItOutIsOn(operation);
  await operation.locator('tr[data-param-name="pool_id"] input').fill(env.pool_id);
  await operation.locator('tr[data-param-name="username"] input').fill("bob");
  await operation
    .locator("textarea.body-param__text")
    .fill(JSON.stringify({ attributes: { given_name: "Robert", "custom:plan": "enterprise" } }, null, 2));
  await operation.locator("button.execute").click();
  const live = operation.locator(".live-responses-table .response").first();
  await live.waitFor();

  // Assert: the page shows the 200 and the body, and sent the token.
  assert.equal((await live.locator(".response-col_status").innerText()).trim(), "200");
  const body = JSON.parse(await live.locator(".response-col_description pre").first().innerText());
  assert.deepEqual(body.updated, ["custom:plan", "given_name"]);
  assert.equal(body.dry_run, false);
  const curl = await operation.locator(".curl-command").innerText();
  assert.match(curl, /Authorization: Bearer ey/);
  await screenshot(page, operation, live);

  // Assert: Cognito changed, and the page loaded nothing from outside the gateway.
  const afterwards = cognitoUser("bob");
  assert.equal(afterwards.given_name, "Robert");
  assert.equal(afterwards["custom:plan"], "enterprise");
  assert.deepEqual(foreign, [], "Swagger UI must work offline, from the gateway alone");
});

test("swagger ui reads a user as the token may view it, with its ETag", { timeout: 120_000 }, async () => {
  // Arrange
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  await openAuthorized(page);

  // Act: open the GET, fill in the path, execute.
  const operation = page.locator(READ_OPERATION);
  await operation.locator(".opblock-summary").first().click();
  await assertTryItOutIsOn(operation);
  await operation.locator('tr[data-param-name="pool_id"] input').fill(env.pool_id);
  await operation.locator('tr[data-param-name="username"] input').fill("bob");
  await operation.locator("button.execute").click();
  const live = operation.locator(".live-responses-table .response").first();
  await live.waitFor();

  // Assert: 200, only what support and billing may view, and the ETag among the headers.
  assert.equal((await live.locator(".response-col_status").innerText()).trim(), "200");
  const body = JSON.parse(await live.locator(".response-col_description pre").first().innerText());
  assert.equal(body.username, "bob");
  assert.equal(body.attributes.email, "bob@example.com");
  assert.equal(body.attributes["custom:tenant_id"], undefined);
  assert.ok(body.withheld > 0);
  const headers = await live.locator(".response-col_description").innerText();
  assert.match(headers, /etag: "[0-9a-f]{32}"/);
});

/** Opens /docs (it redirects to /docs/) and authorizes with the support token. */
async function openAuthorized(page) {
  await page.goto(`${env.base_url}/docs`);
  await page.locator(".swagger-ui .info .title", { hasText: "attrgate" }).waitFor();
  await page.locator(".auth-wrapper button.authorize").click();
  const modal = page.locator(".modal-ux");
  await modal.locator("input").first().fill(env.tokens.support);
  await modal.locator("button.authorize").click();
  await modal.locator("button.btn-done").click();
}

async function assertTryItOutIsOn(operation) {
  // With tryItOutEnabled the inputs are editable at once, and the button offers "Cancel".
  await operation.locator("button.try-out__btn").waitFor();
  assert.equal((await operation.locator("button.try-out__btn").innerText()).trim(), "Cancel");
}

/** From the operation's header down to the live response: what a person would look at. */
async function screenshot(page, operation, live) {
  mkdirSync(ARTIFACTS, { recursive: true });
  await live.scrollIntoViewIfNeeded();
  const top = await operation.evaluate((el) => el.getBoundingClientRect().top + window.scrollY);
  const bottom = await live.evaluate((el) => el.getBoundingClientRect().bottom + window.scrollY);
  await page.screenshot({
    path: SCREENSHOT,
    fullPage: true,
    clip: { x: 0, y: Math.max(0, top - 8), width: 1280, height: bottom - top + 24 },
  });
  console.log(`screenshot: ${path.relative(ROOT, SCREENSHOT)}`);
}
