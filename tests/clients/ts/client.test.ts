// A TypeScript client generated from the committed openapi/openapi.json
// (openapi-typescript types + openapi-fetch), used as a client author would:
// one allowed and one denied update against the running gateway.
//
// scripts/test-api generates target/api-clients/ts/schema.d.ts, type-checks and
// compiles this file with tsc (so a wrong type fails the build), and runs it
// through `scripts/demo --run`, which sets ATTRGATE_DEMO_ENV.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import createClient from "openapi-fetch";

import type { components, paths } from "../../../target/api-clients/ts/schema.js";

type Problem = components["schemas"]["Problem"];
type DeniedAttribute = components["schemas"]["DeniedAttribute"];

interface DemoEnv {
  base_url: string;
  pool_id: string;
  tokens: { support: string; admin: string };
}

const envFile = process.env.ATTRGATE_DEMO_ENV;
assert.ok(envFile, "ATTRGATE_DEMO_ENV is not set: run this through scripts/test-api (scripts/demo --run)");
const env = JSON.parse(readFileSync(envFile, "utf8")) as DemoEnv;

const ATTRIBUTES = "/pools/{pool_id}/users/{username}/attributes";

function client(token: string) {
  return createClient<paths>({ baseUrl: env.base_url, headers: { Authorization: `Bearer ${token}` } });
}

test("an allowed update comes back as the typed response", async () => {
  // Arrange: support may set nickname, billing may set custom:plan.
  const api = client(env.tokens.support);

  // Act
  const { data, error, response } = await api.PATCH(ATTRIBUTES, {
    params: { path: { pool_id: env.pool_id, username: "ann" } },
    body: { attributes: { nickname: "annie", "custom:plan": "enterprise" } },
  });

  // Assert
  assert.equal(response.status, 200, JSON.stringify(error));
  assert.ok(data);
  const updated: string[] = data.updated;
  assert.deepEqual(updated, ["custom:plan", "nickname"]);
  assert.equal(data.dry_run, false);
  assert.equal(data.request_id, response.headers.get("x-request-id"));
});

test("a denied update comes back as a typed problem that lists every denied attribute", async () => {
  // Arrange: no role of this token may verify an email or touch the tenant.
  const api = client(env.tokens.support);

  // Act
  const { data, error, response } = await api.PATCH(ATTRIBUTES, {
    params: { path: { pool_id: env.pool_id, username: "ann" } },
    body: { attributes: { email_verified: "true", "custom:tenant_id": "t-999", given_name: "Ann" } },
  });

  // Assert: the error is the Problem schema, typed (this line would not compile otherwise).
  assert.equal(response.status, 403);
  assert.equal(response.headers.get("content-type"), "application/problem+json");
  assert.equal(data, undefined);
  assert.ok(error);
  const problem: Problem = error;
  const denied: DeniedAttribute[] = problem.denied ?? [];
  assert.equal(problem.type, "urn:attrgate:problem:policy-denied");
  assert.equal(problem.status, 403);
  assert.deepEqual(denied.map((d) => d.attribute).sort(), ["custom:tenant_id", "email_verified"]);
  assert.ok(denied.every((d) => d.reason.length > 0));
  assert.equal(problem.errors, undefined);
});

test("a read comes back as the typed attributes the token may view, with an ETag", async () => {
  const api = client(env.tokens.support);

  const { data, error, response } = await api.GET(ATTRIBUTES, {
    params: { path: { pool_id: env.pool_id, username: "ann" } },
  });

  assert.equal(response.status, 200, JSON.stringify(error));
  assert.ok(data);
  const shown: Record<string, string> = data.attributes;
  assert.equal(shown.email, "ann@example.com");
  assert.equal(shown["custom:tenant_id"], undefined);
  assert.ok(data.withheld > 0);
  assert.ok(response.headers.get("etag")?.startsWith('"'));
});

test("a conditional update with a stale ETag is a typed 412 problem", async () => {
  const api = client(env.tokens.support);
  const read = await api.GET(ATTRIBUTES, { params: { path: { pool_id: env.pool_id, username: "ann" } } });
  const tag = read.response.headers.get("etag") ?? "";

  const written = await api.PATCH(ATTRIBUTES, {
    params: { path: { pool_id: env.pool_id, username: "ann" }, header: { "If-Match": tag } },
    body: { attributes: { nickname: "tagged-ts" } },
  });
  const stale = await api.PATCH(ATTRIBUTES, {
    params: { path: { pool_id: env.pool_id, username: "ann" }, header: { "If-Match": tag } },
    body: { attributes: { nickname: "stale-ts" } },
  });

  assert.equal(written.response.status, 200, JSON.stringify(written.error));
  assert.notEqual(written.response.headers.get("etag"), tag);
  assert.equal(stale.response.status, 412);
  const problem: Problem | undefined = stale.error;
  assert.equal(problem?.code, "precondition_failed");
});

// Compile-time only: the generated types hold attributes to a map of strings.
export function attributeValuesAreStrings(api: ReturnType<typeof client>) {
  return api.PATCH(ATTRIBUTES, {
    params: { path: { pool_id: "us-east-1_x", username: "ann" } },
    // @ts-expect-error attribute values are strings, never numbers
    body: { attributes: { given_name: 42 } },
  });
}
