// The pure parts of the chat readers.
import assert from "node:assert/strict";
import { test } from "node:test";

import { chatResumption, resumeId, tokenIndex } from "../../static/js/readers.js";

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

test("a chat stream resumes after its last token index, or starts afresh without one", () => {
  assert.equal(resumeId(null, 6), "6");
  assert.equal(resumeId(undefined, -1), null);
});

test("a generation's stream resumes by its id and index, or from its start", () => {
  const generation = "0123456789abcdef0123456789abcdef";
  assert.equal(resumeId(generation, 6), `${generation}:6`);
  assert.equal(resumeId(generation, -1), generation);
});

test("a chat socket resumes with the prompt and its last index, or the generation", () => {
  const start = { type: "prompt", prompt: "hi", tokens: 9 };
  assert.deepEqual(chatResumption(start, { generation: null, index: -1 }), start);
  assert.deepEqual(chatResumption(start, { generation: null, index: 4 }),
    { ...start, last_event_id: 4 });
  assert.deepEqual(chatResumption(start, { generation: "g", index: 4 }),
    { type: "resume", generation: "g", after: 4 });
});
