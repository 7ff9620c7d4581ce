// /chat: one generation at a time over the chosen transport, shown as it arrives, with live
// time to first token and tokens per second. Stop stops it on the server too. A generation
// (POST /api/generations) is kept in sessionStorage while it runs: a reload reads it again
// from its first token, into the emptied output, and follows it to its end.
import {
  openChatSocket, readChatEventSource, readChatNdjson, readChatSSE, readChatText, readGeneration,
} from "../readers.js";
import { EXPIRED } from "../token.js";
import { formValues, formatCount, formatRate, setStatus, submitOnCtrlEnter } from "../ui.js";

const form = document.getElementById("chat-form");
const output = document.getElementById("output");
const status = document.getElementById("status");
const count = document.getElementById("count");
const ttft = document.getElementById("ttft");
const rate = document.getElementById("rate");
const reconnects = document.getElementById("reconnects");
const startButton = document.getElementById("start");
const stopButton = document.getElementById("stop");

// transport: [reader, which data- URL it reads]
const TRANSPORTS = {
  generation: [readGeneration, "generationsUrl"],
  eventsource: [readChatEventSource, "sseUrl"],
  "fetch-sse": [readChatSSE, "fetchUrl"],
  "fetch-ndjson": [readChatNdjson, "fetchUrl"],
  "fetch-text": [readChatText, "fetchUrl"],
  websocket: [openChatSocket, "wsUrl"],
};

// {generation: {id, events_url, status_url}, request: {prompt, tokens, delay_ms}}
const STORED_GENERATION = "chat.generation";

let current = null;

function running(on) {
  startButton.disabled = on;
  stopButton.disabled = !on;
  output.setAttribute("aria-busy", String(on));
}

function handlersFor(startedAt, request) {
  let tokens = 0;
  let firstAt = null;
  let streaming = false; // the status says so: set again after a reconnection
  const settle = (state, text) => {
    setStatus(status, state, text);
    sessionStorage.removeItem(STORED_GENERATION);
    current = null;
    running(false);
    // Stop disabled itself while focused: keep the keyboard user's place on the form.
    if ([stopButton, document.body].includes(document.activeElement)) startButton.focus();
  };
  return {
    created(generation) {
      sessionStorage.setItem(STORED_GENERATION, JSON.stringify({ generation, request }));
    },
    token({ text }) {
      const now = performance.now();
      output.append(text); // a text node: tokens are never parsed as HTML
      tokens += 1;
      count.textContent = formatCount(tokens);
      if (!streaming) {
        streaming = true;
        setStatus(status, "busy", "streaming");
      }
      if (firstAt === null) {
        firstAt = now;
        ttft.textContent = `${Math.round(now - startedAt)} ms`;
      } else if (now > firstAt) {
        rate.textContent = formatRate(((tokens - 1) * 1000) / (now - firstAt));
      }
    },
    reconnect({ reason } = {}) {
      streaming = false;
      reconnects.textContent = String(Number(reconnects.textContent) + 1);
      setStatus(status, "warn", reason === EXPIRED ? "waiting for a new token" : "reconnecting");
    },
    end({ finish_reason }) { settle("done", `done: ${finish_reason}`); },
    error(message) { settle("error", `error: ${message}`); },
    expired() { settle("idle", "expired: the generation is no longer kept"); },
  };
}

// Runs `request` over `transport`; `options` go to the reader (readGeneration's `resume`).
function begin(transport, request, options, statusText = "connecting") {
  const [read, urlKey] = TRANSPORTS[transport];
  output.textContent = "";
  count.textContent = "0";
  ttft.textContent = rate.textContent = "–";
  reconnects.textContent = "0";
  setStatus(status, "busy", statusText);
  running(true);
  current = read(form.dataset[urlKey], request, handlersFor(performance.now(), request), options);
}

/** The generation a previous load of this page left running, or null. */
function storedGeneration() {
  try {
    const stored = JSON.parse(sessionStorage.getItem(STORED_GENERATION));
    if (stored?.generation?.events_url && stored.generation.status_url && stored.request) {
      return stored;
    }
  } catch {
    // not JSON: forgotten below, like any other unusable entry
  }
  sessionStorage.removeItem(STORED_GENERATION);
  return null;
}

function resumeStoredGeneration() {
  const stored = storedGeneration();
  if (!stored) return;
  const { generation, request } = stored;
  for (const name of ["prompt", "tokens", "delay_ms"]) {
    if (name in request) form.elements[name].value = String(request[name]);
  }
  form.elements.transport.value = "generation";
  begin("generation", request, { resume: generation }, "resuming");
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  if (current) return;
  const { transport, ...request } = formValues(form, ["tokens", "delay_ms"]);
  begin(transport, request);
});

stopButton.addEventListener("click", () => current?.stop());

submitOnCtrlEnter(form);
resumeStoredGeneration();
