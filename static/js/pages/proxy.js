// /proxy: a chat against the OpenAI-compatible proxy, streamed (`stream: true`) and read with
// fetchEventSource. A completion cannot be resumed, so a dropped stream is an error, not a retry.
import { fetchEventSource } from "../fetch-event-source.js";
import { appendText, formatRate, messageOf, setStatus, submitOnCtrlEnter } from "../ui.js";

const form = document.getElementById("proxy-form");
const conversation = document.getElementById("conversation");
const status = document.getElementById("status");
const ttft = document.getElementById("ttft");
const rate = document.getElementById("rate");
const finish = document.getElementById("finish");
const usage = document.getElementById("usage");
const sendButton = document.getElementById("send");
const stopButton = document.getElementById("stop");

const history = []; // {role, content}: the whole conversation goes with every request
let controller = null;

function running(on) {
  sendButton.disabled = on;
  stopButton.disabled = !on;
}

// Reads one streamed completion into `bubble`; resolves with the answer's text.
async function complete(body, headers, bubble) {
  const startedAt = performance.now();
  let firstAt = null;
  let chunks = 0;
  let answer = "";
  await fetchEventSource(form.dataset.url, {
    method: "POST", body: JSON.stringify(body), headers, signal: controller.signal, maxRetries: 0,
    onmessage({ data }) {
      if (data === "[DONE]") return;
      const chunk = JSON.parse(data);
      if (chunk.error) throw new Error(chunk.error.message);
      if (chunk.usage) usage.textContent = `${chunk.usage.prompt_tokens} in, ${chunk.usage.completion_tokens} out`;
      const choice = chunk.choices?.[0];
      if (choice?.finish_reason) finish.textContent = choice.finish_reason;
      const text = choice?.delta?.content;
      if (!text) return;
      const now = performance.now();
      if (firstAt === null) {
        firstAt = now;
        ttft.textContent = `${Math.round(now - startedAt)} ms`;
        setStatus(status, "busy", "streaming");
      } else if (now > firstAt) {
        rate.textContent = formatRate((chunks * 1000) / (now - firstAt));
      }
      chunks += 1;
      answer += text;
      bubble.append(text); // a text node, never HTML
    },
  });
  return answer;
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  if (controller) return;
  const { message, model, max_tokens: maxTokens, api_key: apiKey } = Object.fromEntries(new FormData(form));
  if (!message.trim()) return form.elements.message.focus();
  history.push({ role: "user", content: message });
  appendText(conversation, "div", message, { className: "bubble user" });
  const bubble = appendText(conversation, "div", "", { className: "bubble assistant" });
  const headers = { "Content-Type": "application/json" };
  if (apiKey) headers.Authorization = `Bearer ${apiKey}`;
  const body = { model, messages: history, stream: true, max_tokens: Number(maxTokens),
    stream_options: { include_usage: true } };
  for (const output of [ttft, rate, finish, usage]) output.textContent = "–";
  setStatus(status, "busy", "waiting for the first chunk");
  controller = new AbortController();
  running(true);
  form.elements.message.value = "";
  try {
    const answer = await complete(body, headers, bubble);
    history.push({ role: "assistant", content: answer });
    setStatus(status, controller.signal.aborted ? "warn" : "done",
      controller.signal.aborted ? "stopped" : "done");
  } catch (error) {
    history.pop(); // the question goes again with the next message
    bubble.classList.add("error");
    bubble.textContent = `Error: ${messageOf(error)}`;
    setStatus(status, "error", "error");
  } finally {
    controller = null;
    running(false);
    form.elements.message.focus();
  }
});

stopButton.addEventListener("click", () => controller?.abort());
document.getElementById("clear").addEventListener("click", () => {
  history.length = 0;
  conversation.replaceChildren();
});

submitOnCtrlEnter(form);
