// The booking agent's chat page: plain browser APIs over the LangGraph Server API that
// this service speaks (threads, streamed runs, thread state), so it needs no build step.
// Everything the server sends is shown with textContent, never parsed as HTML.

const GRAPH_ID = "agent";
const ASSISTANT_STORAGE = "booking-agent.assistant";
const STREAM_MODES = ["messages-tuple", "values", "custom"];
const KEY_STORAGE = "booking-agent.api-key";
const TOOL_LABELS = {
  list_services: "Looking up the services",
  check_availability: "Checking the free times",
  book_appointment: "Booking",
  list_my_appointments: "Looking up your appointments",
  cancel_appointment: "Cancelling",
};

const $ = (selector) => document.querySelector(selector);
const view = {
  threads: $("#threads"),
  messages: $("#messages"),
  status: $("#status"),
  approval: $("#approval"),
  approvalItems: $("#approval-items"),
  composer: $("#composer"),
  prompt: $("#prompt"),
  send: $("#send"),
  apiKey: $("#api-key"),
  assistant: $("#assistant"),
  language: $("#language"),
  confirmBookings: $("#confirm-bookings"),
};
let threadId = null;
let pending = null; // the interrupt a booking waits on: its action requests
let busy = false;

class ApiError extends Error {
  constructor(status, detail) {
    super(detail);
    this.status = status;
  }
}

async function api(method, path, body) {
  const headers = { "Content-Type": "application/json" };
  const key = view.apiKey.value.trim();
  if (key) headers["x-api-key"] = key;
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!response.ok) {
    let detail = `${response.status} ${response.statusText}`;
    try {
      const payload = await response.json();
      if (payload && payload.detail) detail = String(payload.detail);
    } catch {
      // not JSON: the status line says enough
    }
    if (response.status === 401 || response.status === 403) {
      detail += " (set the API key under Settings)";
    }
    throw new ApiError(response.status, detail);
  }
  return response;
}

// Server-sent events from a fetch response: {event, data} once per blank line.
async function* serverSentEvents(response) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  let event = "message";
  let data = [];
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    const lines = buffer.split("\n");
    buffer = lines.pop();
    for (const raw of lines) {
      const line = raw.endsWith("\r") ? raw.slice(0, -1) : raw;
      if (line === "") {
        if (data.length) yield { event, data: JSON.parse(data.join("\n")) };
        event = "message";
        data = [];
      } else if (!line.startsWith(":")) {
        const colon = line.indexOf(":");
        const field = colon === -1 ? line : line.slice(0, colon);
        let text = colon === -1 ? "" : line.slice(colon + 1);
        if (text.startsWith(" ")) text = text.slice(1);
        if (field === "event") event = text;
        else if (field === "data") data.push(text);
      }
    }
  }
}

function textOf(content) {
  if (typeof content === "string") return content;
  if (Array.isArray(content)) {
    return content
      .map((part) => (typeof part === "string" ? part : part && part.text) || "")
      .join("");
  }
  return "";
}

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function showStatus(text) {
  view.status.textContent = text;
}

function scrollDown() {
  view.messages.scrollTop = view.messages.scrollHeight;
}

function renderToolCall(call) {
  const args = JSON.stringify(call.args || {});
  const node = element("div", "tool-call", `${call.name} ${args}`);
  node.dataset.toolCallId = call.id || "";
  return node;
}

function renderToolResult(message) {
  const failed = message.status === "error";
  const text = textOf(message.content);
  const shown = text.length > 300 ? `${text.slice(0, 300)}…` : text;
  return element("div", `tool-result${failed ? " failed" : ""}`, `${message.name}: ${shown}`);
}

function renderMessage(message) {
  const nodes = [];
  const text = textOf(message.content);
  if (message.type === "human") nodes.push(element("div", "msg human", text));
  else if (message.type === "tool") nodes.push(renderToolResult(message));
  else if (message.type === "ai") {
    if (text) nodes.push(element("div", "msg ai", text));
    for (const call of message.tool_calls || []) nodes.push(renderToolCall(call));
  }
  return nodes;
}

function renderMessages(messages) {
  view.messages.replaceChildren(...messages.flatMap(renderMessage));
  scrollDown();
}

function renderApproval(interrupts) {
  const request = interrupts.map((item) => item.value).find((value) => value && value.action_requests);
  pending = request ? request.action_requests : null;
  view.approval.hidden = !pending;
  view.approvalItems.replaceChildren(
    ...(pending || []).map((action) => element("li", "", action.description || action.name)),
  );
  setBusy(busy);
}

function setBusy(value) {
  busy = value;
  view.send.disabled = busy || Boolean(pending);
  view.prompt.disabled = busy || Boolean(pending);
  for (const button of view.approval.querySelectorAll("button")) button.disabled = busy;
}

// --- the conversation in flight -----------------------------------------------------

// Tokens of one AI message land in one bubble, appended as they arrive.
function streamInto(bubbles, chunk) {
  const text = textOf(chunk.content);
  if (!text) return;
  let bubble = bubbles.get(chunk.id);
  if (!bubble) {
    bubble = element("div", "msg ai streaming");
    bubbles.set(chunk.id, bubble);
    view.messages.append(bubble);
  }
  bubble.append(document.createTextNode(text));
  scrollDown();
}

function showProgress(event) {
  if (!event || event.type !== "tool_progress") return;
  const label = TOOL_LABELS[event.tool] || event.tool;
  showStatus(event.status === "running" ? `${label}…` : "");
}

async function runTurn(body) {
  setBusy(true);
  showStatus("Thinking…");
  try {
    const context = {};
    if (view.confirmBookings.checked) context.booking_confirmation = "interrupt";
    if (view.language.value) context.language = view.language.value;
    const response = await api("POST", `/threads/${threadId}/runs/stream`, {
      assistant_id: view.assistant.value || GRAPH_ID,
      stream_mode: STREAM_MODES,
      on_disconnect: "continue",
      context,
      ...body,
    });
    const bubbles = new Map();
    for await (const { event, data } of serverSentEvents(response)) {
      if (event === "messages") {
        const [chunk] = data;
        if (chunk.type === "AIMessageChunk") streamInto(bubbles, chunk);
        else if (chunk.type === "tool") view.messages.append(renderToolResult(chunk));
        for (const call of chunk.tool_calls || []) {
          if (call.name) view.messages.append(renderToolCall(call));
        }
      } else if (event === "custom") {
        showProgress(data);
      } else if (event === "error") {
        throw new ApiError(500, (data && data.message) || "the run failed");
      }
    }
    showStatus("");
  } catch (error) {
    view.messages.append(element("div", "msg error", `Something went wrong: ${error.message}`));
    showStatus("");
  } finally {
    // The stored thread is the truth: what the run wrote, and any booking it waits on.
    await loadThread(threadId);
    setBusy(false);
    await loadThreads();
  }
}

async function send(text) {
  setBusy(true); // at once: a click elsewhere must not land between these two requests
  if (!threadId) {
    try {
      const created = await (await api("POST", "/threads", { metadata: {} })).json();
      selectThread(created.thread_id);
    } finally {
      setBusy(false);
    }
  }
  view.messages.append(element("div", "msg human", text));
  scrollDown();
  const message = { type: "human", content: text, id: crypto.randomUUID() };
  await runTurn({ input: { messages: [message] } });
}

async function decide(approved) {
  const decisions = pending.map(() =>
    approved ? { type: "approve" } : { type: "reject", message: "The customer declined." },
  );
  pending = null;
  view.approval.hidden = true;
  await runTurn({ command: { resume: { decisions } } });
}

// --- threads ------------------------------------------------------------------------

function selectThread(id) {
  threadId = id;
  if (id) history.replaceState(null, "", `#thread=${id}`);
  else history.replaceState(null, "", location.pathname);
  for (const button of view.threads.querySelectorAll("button")) {
    button.setAttribute("aria-current", String(button.dataset.threadId === id));
  }
}

async function loadThread(id) {
  try {
    const state = await (await api("GET", `/threads/${id}/state`)).json();
    renderMessages((state.values && state.values.messages) || []);
    renderApproval(state.interrupts || []);
  } catch (error) {
    if (error.status === 404) {
      selectThread(null);
      renderMessages([]);
      showStatus("That conversation no longer exists.");
    } else showStatus(error.message);
  }
}

function threadLabel(thread) {
  const messages = (thread.values && thread.values.messages) || [];
  const first = messages.find((message) => message.type === "human");
  const text = first ? textOf(first.content) : "New conversation";
  return text.length > 40 ? `${text.slice(0, 40)}…` : text;
}

async function loadThreads() {
  try {
    const response = await api("POST", "/threads/search", {
      metadata: { graph_id: GRAPH_ID },
      limit: 50,
      sort_by: "updated_at",
      sort_order: "desc",
    });
    const threads = await response.json();
    view.threads.replaceChildren(
      ...threads.map((thread) => {
        const button = element("button", "", threadLabel(thread));
        button.type = "button";
        button.dataset.threadId = thread.thread_id;
        button.setAttribute("aria-current", String(thread.thread_id === threadId));
        button.append(element("small", "", new Date(thread.updated_at).toLocaleString()));
        button.addEventListener("click", () => openThread(thread.thread_id));
        const item = element("li");
        item.append(button);
        return item;
      }),
    );
  } catch (error) {
    showStatus(error.message);
  }
}

async function openThread(id) {
  if (busy) return;
  selectThread(id);
  await loadThread(id);
}

function newConversation() {
  if (busy) return;
  selectThread(null);
  pending = null;
  view.approval.hidden = true;
  renderMessages([]);
  setBusy(false);
  view.prompt.focus();
}

// The graph's own assistant and the stored ones (one per salon, say), to talk to.
async function loadAssistants() {
  try {
    const found = await (
      await api("POST", "/assistants/search", { graph_id: GRAPH_ID, limit: 100 })
    ).json();
    const chosen = localStorage.getItem(ASSISTANT_STORAGE) || GRAPH_ID;
    view.assistant.replaceChildren(
      ...found.map((assistant) => {
        const option = element("option", "", assistant.name);
        option.value = assistant.assistant_id;
        option.selected = assistant.assistant_id === chosen;
        return option;
      }),
    );
  } catch (error) {
    showStatus(error.message);
  }
}

// --- wiring -------------------------------------------------------------------------

view.apiKey.value = localStorage.getItem(KEY_STORAGE) || "";
view.apiKey.addEventListener("change", () => {
  localStorage.setItem(KEY_STORAGE, view.apiKey.value.trim());
  loadThreads();
  loadAssistants();
});
view.assistant.addEventListener("change", () => {
  localStorage.setItem(ASSISTANT_STORAGE, view.assistant.value);
});
view.composer.addEventListener("submit", (event) => {
  event.preventDefault();
  const text = view.prompt.value.trim();
  if (!text || busy) return;
  view.prompt.value = "";
  send(text).catch((error) => showStatus(error.message));
});
view.prompt.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey) {
    event.preventDefault();
    view.composer.requestSubmit();
  }
});
$("#new-chat").addEventListener("click", newConversation);
$("#approve").addEventListener("click", () => decide(true));
$("#reject").addEventListener("click", () => decide(false));

const fromUrl = new URLSearchParams(location.hash.slice(1)).get("thread");
if (fromUrl) openThread(fromUrl);
loadThreads();
loadAssistants();
