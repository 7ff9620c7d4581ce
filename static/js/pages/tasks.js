// /tasks: start demo tasks and follow each one's events with a progress bar. The tasks and
// their last event ids live in sessionStorage, so a reload re-subscribes with Last-Event-ID
// and every bar carries on from where it was, missing and repeating nothing.
import { errorMessage } from "../readers.js";
import { follow } from "../follow.js";
import { authFetch } from "../token.js";
import { formValues, messageOf, setStatus } from "../ui.js";

const form = document.getElementById("task-form");
const list = document.getElementById("tasks");
const template = document.getElementById("task-template");
const summary = document.getElementById("summary");
const note = document.getElementById("form-note");
const noTasks = document.getElementById("no-tasks");
const startButton = document.getElementById("start-task");
// Over HTTP/1.1 a browser opens at most six connections to a server, streams included.
const liveLimit = Number(form.dataset.liveLimit);
const STORE = "tasks";
const FINAL = new Set(["done", "failed", "cancelled"]);
const STATE = { running: "busy", done: "done", failed: "error", cancelled: "warn" };

const tasks = new Map(); // id → {record, row, stream}

function save() {
  sessionStorage.setItem(STORE, JSON.stringify([...tasks.values()].map((task) => task.record)));
}

function render({ record, row }, statusText = record.status) {
  const state = STATE[record.status] ?? "busy";
  row.dataset.state = state;
  setStatus(row.querySelector(".status"), state, statusText);
  const bar = row.querySelector("progress");
  bar.value = record.percent;
  bar.setAttribute("aria-valuetext", `${record.percent}%`);
  row.querySelector(".message").textContent =
    `${record.percent}% · ${record.message || `step ${record.step} of ${record.steps}`}`;
  row.querySelector(".cancel").hidden = FINAL.has(record.status);
}

function refreshSummary() {
  const running = [...tasks.values()].filter((task) => task.stream).length;
  const ended = tasks.size - [...tasks.values()].filter((t) => !FINAL.has(t.record.status)).length;
  noTasks.hidden = tasks.size > 0;
  setStatus(summary, running ? "live" : tasks.size ? "done" : "idle",
    tasks.size ? `${running} live, ${ended} ended` : "no tasks");
  startButton.disabled = running >= liveLimit;
  note.textContent = startButton.disabled
    ? `${liveLimit} tasks are live: a browser opens at most six connections to one server over HTTP/1.1.`
    : "";
}

// The task's state after one of its events; notices (reset, overflow, error) carry none.
function apply(record, { type, data }) {
  const body = JSON.parse(data);
  if (type === "progress") {
    Object.assign(record, { status: "running", step: body.step, steps: body.steps,
      percent: body.percent, message: body.message });
  } else if (type === "done") {
    Object.assign(record, { status: "done", percent: 100, step: record.steps,
      message: `result: ${JSON.stringify(body.result)}` });
  } else if (FINAL.has(type)) {
    Object.assign(record, { status: type, message: body.message ?? "" });
  }
}

function subscribe(task) {
  const { record } = task;
  task.stream = follow(record.eventsUrl, {
    lastEventId: record.lastEventId,
    isFinal: ({ type }) => FINAL.has(type),
    onopen: () => render(task),
    onevent(event) {
      apply(record, event);
      record.lastEventId = event.lastEventId;
      save();
      render(task);
    },
    onretry: ({ delayMs }) => render(task, `reconnecting in ${(delayMs / 1000).toFixed(1)} s`),
    onrenew: () => render(task, "waiting for a new token"),
    onend() {
      task.stream = null;
      refreshSummary();
    },
    onerror(error) {
      task.stream = null;
      record.status = "failed";
      record.message = messageOf(error);
      save();
      render(task, "lost");
      refreshSummary();
    },
  });
  refreshSummary();
}

function add(record) {
  const row = template.content.firstElementChild.cloneNode(true);
  row.querySelector(".title").textContent = `task ${record.id}`;
  const task = { record, row, stream: null };
  row.querySelector(".cancel").addEventListener("click", () => cancel(task));
  tasks.set(record.id, task);
  list.prepend(row);
  render(task);
  if (!FINAL.has(record.status)) subscribe(task);
  refreshSummary();
}

async function cancel(task) {
  const response = await authFetch(task.record.statusUrl, { method: "DELETE" });
  // The `cancelled` event ends the bar; a task that ended meanwhile answers 409.
  if (!response.ok && response.status !== 409) render(task, `cancel failed: ${await errorMessage(response)}`);
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const request = formValues(form, ["steps", "step_ms"]);
  startButton.disabled = true;
  try {
    const response = await authFetch(form.dataset.tasksUrl, {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(request),
    });
    if (!response.ok) throw new Error(await errorMessage(response));
    const { id, status_url: statusUrl, events_url: eventsUrl } = await response.json();
    add({ id, statusUrl, eventsUrl, lastEventId: "", status: "running", step: 0,
      steps: request.steps, percent: 0, message: "" });
    save();
  } catch (error) {
    note.textContent = `Could not start the task: ${messageOf(error)}`;
  } finally {
    refreshSummary();
  }
});

document.getElementById("clear-ended").addEventListener("click", () => {
  for (const [id, task] of tasks) {
    if (!FINAL.has(task.record.status)) continue;
    task.row.remove();
    tasks.delete(id);
  }
  save();
  refreshSummary();
});

// After a reload: the bars as they were, then each running one resumes from its last event.
for (const record of JSON.parse(sessionStorage.getItem(STORE) ?? "[]")) add(record);
refreshSummary();
