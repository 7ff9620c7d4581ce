// /channels: subscribe to a channel and publish to it. Event data is shown as text, whatever
// it holds: a published `<img onerror=...>` is a string on this page, never markup.
import { errorMessage } from "../readers.js";
import { follow } from "../follow.js";
import { authFetch } from "../token.js";
import { appendText, formatCount, messageOf, setStatus, submitOnCtrlEnter } from "../ui.js";

const subscribeForm = document.getElementById("subscribe-form");
const publishForm = document.getElementById("publish-form");
const list = document.getElementById("events");
const status = document.getElementById("status");
const count = document.getElementById("event-count");
const noEvents = document.getElementById("no-events");
const result = document.getElementById("publish-result");
const subscribeButton = document.getElementById("subscribe");
const unsubscribeButton = document.getElementById("unsubscribe");
const NOTICES = new Set(["reset", "overflow", "error"]); // what the server adds, not a publisher
const MAX_EVENTS = 500;

let subscription = null;
let received = 0;

// JSON data pretty-printed; anything else as it came.
function readable(data) {
  try {
    return JSON.stringify(JSON.parse(data), null, 2);
  } catch {
    return data;
  }
}

function show({ type, data, lastEventId }) {
  const item = document.createElement("li");
  const meta = appendText(item, "div", "", { className: "meta" });
  appendText(meta, "span", type, { className: "name" });
  appendText(meta, "span", lastEventId ? `id ${lastEventId}` : "no id");
  appendText(meta, "time", new Date().toLocaleTimeString());
  appendText(item, "div", readable(data), { className: "data" });
  if (NOTICES.has(type)) item.classList.add("notice");
  list.prepend(item); // newest first
  while (list.childElementCount > MAX_EVENTS) list.lastElementChild.remove();
  noEvents.hidden = true;
  count.textContent = formatCount(++received);
}

function running(on) {
  subscribeButton.disabled = on;
  unsubscribeButton.disabled = !on;
}

subscribeForm.addEventListener("submit", (event) => {
  event.preventDefault();
  subscription?.stop();
  const channel = subscribeForm.elements.channel.value.trim();
  const url = `${subscribeForm.dataset.eventsUrl}${encodeURIComponent(channel)}`;
  setStatus(status, "busy", "connecting");
  running(true);
  subscription = follow(url, {
    onopen: () => setStatus(status, "live", `subscribed to ${channel}`),
    onevent: show,
    onretry: ({ delayMs }) => setStatus(status, "warn", `reconnecting in ${(delayMs / 1000).toFixed(1)} s`),
    onrenew: () => setStatus(status, "warn", "waiting for a new token"),
    onerror(error) {
      subscription = null;
      running(false);
      setStatus(status, "error", `error: ${messageOf(error)}`);
    },
  });
});

unsubscribeButton.addEventListener("click", () => {
  subscription?.stop();
  subscription = null;
  running(false);
  setStatus(status, "idle", "not subscribed");
});

publishForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  const { event: name, data, token } = Object.fromEntries(new FormData(publishForm));
  let value;
  try {
    value = JSON.parse(data);
  } catch {
    result.textContent = "The data must be JSON (a string needs its quotes).";
    return publishForm.elements.data.focus();
  }
  const channel = subscribeForm.elements.channel.value.trim(); // the one field for both forms
  const headers = { "Content-Type": "application/json" };
  if (token) headers.Authorization = `Bearer ${token}`; // the server's PUBLISH_TOKEN, not the page's
  try {
    const response = await authFetch(`${publishForm.dataset.publishUrl}${encodeURIComponent(channel)}`, {
      method: "POST", headers, body: JSON.stringify({ event: name, data: value }),
    });
    if (!response.ok) throw new Error(await errorMessage(response));
    const { id } = await response.json();
    result.textContent = `Published to ${channel} as ${id}.`;
  } catch (error) {
    result.textContent = `Not published: ${messageOf(error)}`;
  }
});

submitOnCtrlEnter(publishForm);
