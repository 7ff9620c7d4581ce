// The JavaScript SSE parser against tests/unit/streaming/sse_vectors.json, the vectors the Python parser
// (streaming/sse.py, tests/unit/streaming/test_sse_vectors.py) passes too: the two agree byte for byte.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import { EventStreamParser } from "../../static/js/sse-parser.js";

const { vectors } = JSON.parse(readFileSync(new URL("../unit/streaming/sse_vectors.json", import.meta.url), "utf8"));
const utf8 = new TextEncoder();

function streamBytes(vector) {
  if (vector.stream_hex !== undefined) return Uint8Array.from(Buffer.from(vector.stream_hex, "hex"));
  return utf8.encode(vector.stream);
}

// Whole, split in two at every byte, then one byte at a time.
function* splits(bytes) {
  yield [bytes];
  for (let cut = 1; cut < bytes.length; cut++) yield [bytes.subarray(0, cut), bytes.subarray(cut)];
  yield Array.from(bytes, (_, i) => bytes.subarray(i, i + 1));
}

function outcome(streams) {
  const parser = new EventStreamParser();
  const events = [];
  for (const chunks of streams) {
    for (const chunk of chunks) events.push(...parser.feed(chunk));
    events.push(...parser.end());
  }
  return { events, lastEventId: parser.lastEventId, retry: parser.retry };
}

test("the vectors are there", () => {
  assert.ok(vectors.length > 50);
  assert.equal(new Set(vectors.map((v) => v.name)).size, vectors.length);
});

for (const vector of vectors) {
  test(vector.name, () => {
    const expected = { events: vector.events, lastEventId: vector.lastEventId, retry: vector.retry };
    const reconnect = vector.reconnect === undefined ? [] : [[utf8.encode(vector.reconnect)]];
    for (const chunks of splits(streamBytes(vector))) {
      assert.deepEqual(outcome([chunks, ...reconnect]), expected, `chunks: ${chunks.map((c) => c.length)}`);
    }
  });
}

test("strings are parsed like their UTF-8 bytes", () => {
  for (const vector of vectors.filter((v) => v.stream !== undefined)) {
    const reconnect = vector.reconnect === undefined ? [] : [[vector.reconnect]];
    assert.deepEqual(outcome([[vector.stream], ...reconnect]).events, vector.events, vector.name);
  }
});

test("a CR at the end of a chunk dispatches without waiting for the next", () => {
  const parser = new EventStreamParser();
  assert.deepEqual(parser.feed("data: a\r\r"), [{ type: "message", data: "a", lastEventId: "" }]);
  assert.deepEqual(parser.feed("\ndata: b\r"), []); // that LF completed a CRLF: no blank line
  assert.deepEqual(parser.feed("\n"), []);
  assert.deepEqual(parser.feed("\n"), [{ type: "message", data: "b", lastEventId: "" }]);
});
