// /logs: follow a log live. Pause stops the stream and keeps its last event id (the byte offset
// after the last line shown); resume asks for what follows it, so no line is lost or repeated.
import { errorMessage } from "../readers.js";
import { follow } from "../follow.js";
import { authFetch } from "../token.js";
import { appendText, atBottom, formatCount, messageOf, scrollToEnd, setStatus } from "../ui.js";

const form = document.getElementById("log-form");
const select = document.getElementById("log-name");
const lines = document.getElementById("lines");
const lineCount = document.getElementById("line-count");
const status = document.getElementById("status");
const pauseButton = document.getElementById("pause");
const autoscroll = document.getElementById("autoscroll");
const MAX_LINES = 5000; // older lines leave the page, so a long follow keeps its memory bounded
const NOTICES = {
  truncated: "the log was truncated: starting again from its beginning",
  rotated: "the log was rotated: following the new file",
  offset_past_end: "the log is shorter than where we were: starting again from its beginning",
};

let stream = null;
let resumeFrom = null; // {name, lastEventId} while paused
let shown = 0;

function eventsUrl(name, tail) {
  return `${form.dataset.eventsUrl}${encodeURIComponent(name)}?tail=${tail}`;
}

function show(text, className) {
  // Auto-scroll only while the reader is at the bottom: scrolling up to read stops it.
  const stick = autoscroll.checked && atBottom(lines);
  appendText(lines, "li", text, { className, limit: MAX_LINES });
  if (!className) lineCount.textContent = formatCount(++shown);
  if (stick) scrollToEnd(lines);
}

function onevent({ type, data }) {
  if (type === "message") return show(data);
  const body = JSON.parse(data);
  if (type === "reset") show(`— ${NOTICES[body.reason] ?? body.reason} —`, "notice");
  else if (type === "overflow") show("— fell behind: resuming —", "notice");
  else if (type === "error") setStatus(status, "error", `error: ${body.message}`);
}

function start(name, { tail, lastEventId = "" }) {
  stream = follow(eventsUrl(name, tail), {
    lastEventId,
    isFinal: ({ type }) => type === "error",
    onopen: () => setStatus(status, "live", `following ${name}`),
    onevent,
    onretry: ({ delayMs }) => setStatus(status, "warn", `reconnecting in ${(delayMs / 1000).toFixed(1)} s`),
    onrenew: () => setStatus(status, "warn", "waiting for a new token"),
    onend: () => { stream = null; pauseButton.disabled = true; },
    onerror(error) {
      stream = null;
      pauseButton.disabled = true;
      setStatus(status, "error", `error: ${messageOf(error)}`);
    },
  });
  pauseButton.disabled = false;
  setStatus(status, "busy", "connecting");
}

function setPaused(paused) {
  pauseButton.textContent = paused ? "Resume" : "Pause";
  pauseButton.setAttribute("aria-pressed", String(paused));
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  stream?.stop();
  resumeFrom = null;
  setPaused(false);
  lines.replaceChildren();
  shown = 0;
  lineCount.textContent = "0";
  if (select.value) start(select.value, { tail: Number(form.elements.tail.value) });
});

pauseButton.addEventListener("click", () => {
  if (resumeFrom) {
    start(resumeFrom.name, { tail: 0, lastEventId: resumeFrom.lastEventId });
    resumeFrom = null;
    setPaused(false);
  } else if (stream) {
    resumeFrom = { name: select.value, lastEventId: stream.stop() };
    stream = null;
    setPaused(true);
    setStatus(status, "idle", "paused");
  }
});

document.getElementById("clear").addEventListener("click", () => {
  lines.replaceChildren();
  shown = 0;
  lineCount.textContent = "0";
});

// The log names; the access log is the one to pick first.
(async () => {
  const response = await authFetch(form.dataset.logsUrl);
  if (!response.ok) throw new Error(await errorMessage(response));
  const body = await response.json();
  const names = Array.isArray(body) ? body : body.logs ?? body.names ?? [];
  select.replaceChildren(...names.map((name) => new Option(String(name), String(name))));
  if (names.length === 0) select.append(new Option("no logs yet", ""));
  if (names.includes("access.log")) select.value = "access.log";
})().catch((error) => {
  select.replaceChildren(new Option("unavailable", ""));
  setStatus(status, "error", `could not list the logs: ${messageOf(error)}`);
});
