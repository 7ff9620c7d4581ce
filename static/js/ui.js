// What every page does the same way: status badges, text-only output, numbers, auto-scroll.
// Streamed text is only ever inserted as text (textContent, text nodes), never parsed as HTML.

/** Shows `text` in a status badge; `state` (idle, busy, done, warn, error) picks its colour. */
export function setStatus(element, state, text = state) {
  element.dataset.state = state;
  element.textContent = text;
}

/** Appends an element with `text` as its only content, and drops the oldest past `limit`. */
export function appendText(list, tag, text, { className, limit = 2000 } = {}) {
  const item = document.createElement(tag);
  if (className) item.className = className;
  item.textContent = text;
  list.append(item);
  while (list.childElementCount > limit) list.firstElementChild.remove();
  return item;
}

/** Whether the user is at the bottom of a scrolled box (so new lines may scroll it). */
export function atBottom(box, slack = 24) {
  return box.scrollHeight - box.scrollTop - box.clientHeight <= slack;
}

export function scrollToEnd(box) {
  box.scrollTop = box.scrollHeight;
}

const integer = new Intl.NumberFormat("en");
const decimal = new Intl.NumberFormat("en", { maximumFractionDigits: 1 });

export function formatCount(value) {
  return integer.format(value);
}

export function formatRate(value) {
  return decimal.format(value);
}

/** A form's fields as an object; `numbers` lists the fields to send as numbers. */
export function formValues(form, numbers = []) {
  const values = Object.fromEntries(new FormData(form));
  for (const name of numbers) values[name] = Number(values[name]);
  return values;
}

/** Ctrl+Enter (or Cmd+Enter) in one of the form's text areas submits it, as chat boxes do. */
export function submitOnCtrlEnter(form) {
  form.addEventListener("keydown", (event) => {
    if (event.key !== "Enter" || !(event.ctrlKey || event.metaKey)) return;
    if (event.target.tagName !== "TEXTAREA") return;
    event.preventDefault();
    form.requestSubmit();
  });
}

/** The error message of a thrown value, for a status badge. */
export function messageOf(error) {
  return error?.message ?? String(error);
}
