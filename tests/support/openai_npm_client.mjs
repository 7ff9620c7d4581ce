// The openai npm package streaming a chat completion through the relay: prints the answer's
// text and the number of chunks it saw, as JSON.
// Usage: node openai_npm_client.mjs BASE_URL [X-Script header for the test's upstream]
import OpenAI from "openai";

const client = new OpenAI({
  baseURL: process.argv[2],
  apiKey: "unused",
  maxRetries: 0,
  defaultHeaders: process.argv[3] ? { "X-Script": process.argv[3] } : {},
});
const stream = await client.chat.completions.create({
  model: "gpt-test",
  messages: [{ role: "user", content: "hello" }],
  stream: true,
});
let text = "";
let chunks = 0;
for await (const chunk of stream) {
  chunks += 1;
  text += chunk.choices[0]?.delta?.content ?? "";
}
console.log(JSON.stringify({ text, chunks }));
