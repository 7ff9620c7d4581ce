// The playground page: start a generation over the chosen transport and show it as it arrives.
import { fetchChat, openChatSocket, readEventSource } from "./readers.js";

const form = document.getElementById("chat-form");
const output = document.getElementById("output");
const status = document.getElementById("status");
const count = document.getElementById("count");
const startButton = document.getElementById("start");
const stopButton = document.getElementById("stop");
let current = null;

function settle(text) {
  status.textContent = text;
  current = null;
  startButton.disabled = false;
  stopButton.disabled = true;
}

const handlers = {
  start() { status.textContent = "streaming"; },
  token({ text }) {
    output.append(text); // a text node: tokens are never parsed as HTML
    count.textContent = String(Number(count.textContent) + 1);
  },
  end({ finish_reason }) { settle(`done: ${finish_reason}`); },
  error(message) { settle(`error: ${message}`); },
};

function start(transport, request) {
  const { sseUrl, fetchUrl, wsUrl } = form.dataset;
  if (transport === "eventsource") {
    const query = new URLSearchParams(Object.entries(request).map(([k, v]) => [k, String(v)]));
    return readEventSource(`${sseUrl}?${query}`, handlers);
  }
  if (transport === "websocket") return openChatSocket(wsUrl, request, handlers);
  return fetchChat(fetchUrl, request, transport.replace("fetch-", ""), handlers);
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  const data = new FormData(form);
  const request = {
    prompt: data.get("prompt"),
    tokens: Number(data.get("tokens")),
    delay_ms: Number(data.get("delay_ms")),
  };
  output.textContent = "";
  count.textContent = "0";
  status.textContent = "connecting";
  startButton.disabled = true;
  stopButton.disabled = false;
  current = start(data.get("transport"), request);
});

stopButton.addEventListener("click", () => {
  if (!current) return;
  const transport = new FormData(form).get("transport");
  current.stop();
  // EventSource has no end to wait for once closed; the others report their own end.
  if (transport === "eventsource") settle("done: cancelled");
});
