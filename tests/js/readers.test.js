// The pure parts of the chat readers.
import assert from "node:assert/strict";
import { test } from "node:test";

import { tokenIndex } from "../../static/js/readers.js";

test("a plain SSE id is the token index", () => {
  assert.equal(tokenIndex("0"), 0);
  assert.equal(tokenIndex("41"), 41);
});

test("a generation's id is its id, a colon, then the token index", () => {
  assert.equal(tokenIndex("0123456789abcdef0123456789abcdef:0"), 0);
  assert.equal(tokenIndex("0123456789abcdef0123456789abcdef:17"), 17);
});

test("only the part after the last colon counts", () => {
  assert.equal(tokenIndex("a:b:9"), 9);
});

test("an id without a number is not an index", () => {
  assert.ok(Number.isNaN(tokenIndex("0123456789abcdef0123456789abcdef:")));
  assert.ok(Number.isNaN(tokenIndex("start")));
  assert.ok(Number.isNaN(tokenIndex("")));
});
