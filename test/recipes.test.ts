// Every bundled recipe is a valid recipe of its kind: a schema change (a renamed field, a new
// cross-field check) that a recipe in recipes/ no longer meets fails here, not on a user's run.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { loadAnyRecipe } from "../src/recipe/recipe.js";
import { REPO_ROOT } from "./helpers/fixtures.js";

test("every recipe in recipes/ validates", () => {
  const dir = join(REPO_ROOT, "recipes");
  const files = readdirSync(dir).filter((f) => /\.(ya?ml|json)$/.test(f));
  assert.ok(files.length >= 15, files.join(", "));
  for (const f of files) {
    const r = loadAnyRecipe(join(dir, f));
    assert.ok(r.name.length > 0, f);
  }
});
