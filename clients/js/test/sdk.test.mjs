// The official JavaScript SDK against a running service (LANGGRAPH_API_URL), making
// the calls agent-chat-ui and the SDK's own examples make, with the same bodies.
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { test } from "node:test";

import { Client } from "@langchain/langgraph-sdk";

const apiUrl = process.env.LANGGRAPH_API_URL;
assert.ok(apiUrl, "set LANGGRAPH_API_URL to a running service");
const client = new Client({ apiUrl, apiKey: process.env.LANGGRAPH_API_KEY });

const ALL_MODES = [
  "values",
  "updates",
  "messages",
  "messages-tuple",
  "events",
  "debug",
  "custom",
  "checkpoints",
  "tasks",
];

// A user message the way agent-chat-ui sends one: typed, content parts, its own id.
function ask(text, id = randomUUID()) {
  return { messages: [{ id, type: "human", content: [{ type: "text", text }] }] };
}

async function collect(iterable) {
  const parts = [];
  for await (const part of iterable) parts.push(part);
  return parts;
}

function eventNames(parts) {
  return new Set(parts.map((part) => part.event));
}

test("assistants: record, search by name, count, graph, schemas, subgraphs", async () => {
  const assistant = await client.assistants.get("agent");
  assert.equal(assistant.graph_id, "agent");
  const found = await client.assistants.search({ graphId: "agent", name: "AGE", limit: 10 });
  assert.deepEqual(
    found.map((item) => item.assistant_id),
    ["agent"],
  );
  assert.equal(await client.assistants.count({ graphId: "agent" }), 1);
  assert.equal((await client.assistants.search({ name: "nobody" })).length, 0);
  const graph = await client.assistants.getGraph("agent", { xray: true });
  assert.ok(graph.nodes.some((node) => node.id === "tools"));
  assert.ok(graph.edges.some((edge) => edge.source === "__start__" && edge.target === "agent"));
  const schemas = await client.assistants.getSchemas("agent");
  assert.ok("messages" in schemas.input_schema.properties);
  assert.ok("language" in schemas.context_schema.properties);
  assert.deepEqual(await client.assistants.getSubgraphs("agent", { recurse: true }), {});
});

test("stored assistants: create, run with, update, versions, latest, delete", async () => {
  const salon = await client.assistants.create({
    graphId: "agent",
    name: "Peluquería Sol",
    context: { salon_name: "Peluquería Sol", language: "es" },
    metadata: { salon: "sol" },
  });
  assert.equal(salon.version, 1);
  const thread = await client.threads.create();
  const greeted = await client.runs.wait(thread.thread_id, salon.assistant_id, {
    input: ask("hello"),
  });
  assert.match(greeted.messages.at(-1).content, /^¡Hola! Te atiende Peluquería Sol\./);
  const renamed = await client.assistants.update(salon.assistant_id, {
    context: { salon_name: "Sol y Sombra", language: "en" },
  });
  assert.equal(renamed.version, 2);
  const versions = await client.assistants.getVersions(salon.assistant_id);
  assert.deepEqual(
    versions.map((version) => version.version),
    [2, 1],
  );
  const again = await client.runs.wait(thread.thread_id, salon.assistant_id, {
    input: ask("hello"),
  });
  assert.match(again.messages.at(-1).content, /^Hi, this is Sol y Sombra!/);
  assert.equal((await client.assistants.setLatest(salon.assistant_id, 1)).version, 1);
  const found = await client.assistants.search({ metadata: { salon: "sol" } });
  assert.deepEqual(
    found.map((item) => item.assistant_id),
    [salon.assistant_id],
  );
  await client.assistants.delete(salon.assistant_id);
  await assert.rejects(client.assistants.get(salon.assistant_id), (error) => error.status === 404);
});

test("agent-chat-ui's stream: values, messages-tuple, custom, subgraphs, resumable", async () => {
  const thread = await client.threads.create({ metadata: { customer: "js" } });
  const mine = randomUUID();
  let created;
  const parts = await collect(
    client.runs.stream(thread.thread_id, "agent", {
      input: ask("what services do you offer?", mine),
      streamMode: ["values", "messages-tuple", "custom"],
      streamSubgraphs: true,
      streamResumable: true,
      onDisconnect: "continue",
      onRunCreated: (meta) => {
        created = meta;
      },
    }),
  );
  const names = eventNames(parts);
  assert.equal(parts[0].event, "metadata");
  for (const name of ["values", "messages", "custom"]) assert.ok(names.has(name), name);
  assert.ok(!names.has("error"));
  assert.equal(created.thread_id, thread.thread_id);
  const [chunk, metadata] = parts.find((part) => part.event === "messages").data;
  assert.ok(chunk.type && metadata.langgraph_node);
  const custom = parts.filter((part) => part.event === "custom").map((part) => part.data);
  assert.ok(custom.some((item) => item.tool === "list_services" && item.status === "ok"));

  const state = await client.threads.getState(thread.thread_id);
  const human = state.values.messages.find((message) => message.type === "human");
  assert.equal(human.id, mine);
  assert.equal(human.content, "what services do you offer?");

  // The thread list agent-chat-ui shows.
  const listed = await client.threads.search({ metadata: { graph_id: "agent" }, limit: 100 });
  const item = listed.find((entry) => entry.thread_id === thread.thread_id);
  assert.ok(item, "the thread is listed by graph_id");
  assert.equal(item.metadata.assistant_id, "agent");
  assert.equal(item.metadata.customer, "js");
  assert.ok(item.values.messages.length >= 2);
  const history = await client.threads.getHistory(thread.thread_id, { limit: 10 });
  assert.ok(history.length >= 1 && history[0].checkpoint.checkpoint_id);
  const run = await client.runs.get(thread.thread_id, created.run_id);
  assert.equal(run.status, "success");
});

test("every stream mode at once, and `messages` as partial/complete events", async () => {
  const thread = await client.threads.create();
  const parts = await collect(
    client.runs.stream(thread.thread_id, "agent", {
      input: ask("what services do you offer?"),
      streamMode: ALL_MODES,
    }),
  );
  const names = eventNames(parts);
  for (const name of [
    "values",
    "updates",
    "messages",
    "messages/metadata",
    "messages/partial",
    "messages/complete",
    "events",
    "debug",
    "custom",
    "checkpoints",
    "tasks",
  ]) {
    assert.ok(names.has(name), name);
  }
  const values = parts.filter((part) => part.event === "values").at(-1).data;
  const reply = values.messages.at(-1);
  const partials = parts
    .filter((part) => part.event === "messages/partial" && part.data[0].id === reply.id)
    .map((part) => part.data[0].content);
  assert.equal(partials.at(-1), reply.content);
  assert.ok(partials.length > 1, "streamed token by token");
});

test("context, background runs, join, join stream, list, stateless", async () => {
  const thread = await client.threads.create();
  const greeted = await client.runs.wait(thread.thread_id, "agent", {
    input: ask("hola"),
    context: { language: "en", salon_name: "Salón Lucía" },
  });
  assert.match(greeted.messages.at(-1).content, /^Hi, this is Salón Lucía!/);

  const run = await client.runs.create(thread.thread_id, "agent", {
    input: ask("what services?"),
    streamMode: ["values", "messages"],
    streamResumable: true,
  });
  assert.equal(run.status, "pending");
  const joined = await client.runs.join(thread.thread_id, run.run_id);
  assert.equal(joined.messages.at(-1).type, "ai");
  const replay = await collect(
    client.runs.joinStream(thread.thread_id, run.run_id, { streamMode: "messages" }),
  );
  const replayed = eventNames(replay);
  assert.ok(replayed.has("messages/partial") && !replayed.has("values"));
  const runs = await client.runs.list(thread.thread_id);
  assert.ok(runs.some((item) => item.run_id === run.run_id && item.status === "success"));

  const stateless = await client.runs.wait(null, "agent", { input: ask("opening hours?") });
  assert.equal(stateless.messages.at(-1).type, "ai");
});

test("approval: the interrupt, then a resume command", async () => {
  const thread = await client.threads.create();
  const paused = await client.runs.wait(thread.thread_id, "agent", {
    input: ask("manicure on Wednesday at 16:00, I'm Eva, eva@example.com"),
    context: { booking_confirmation: "interrupt" },
  });
  const request = paused.__interrupt__[0].value;
  assert.equal(request.action_requests[0].name, "book_appointment");
  assert.equal((await client.threads.get(thread.thread_id)).status, "interrupted");
  const done = await client.runs.wait(thread.thread_id, "agent", {
    command: { resume: { decisions: [{ type: "approve" }] } },
  });
  assert.match(done.messages.at(-1).content, /confirmation code/i);
  assert.equal((await client.threads.get(thread.thread_id)).status, "idle");
});

test("store: put, get, search, namespaces, delete; the agent's customer memory", async () => {
  const space = ["js", randomUUID().slice(0, 8)];
  await client.store.putItem(space, "note", { text: "closed on 24 December" });
  await client.store.putItem([...space, "staff"], "eva", { role: "colorist" }, { ttl: 60 });
  const item = await client.store.getItem(space, "note");
  assert.deepEqual(item.value, { text: "closed on 24 December" });
  assert.deepEqual(item.namespace, space);
  assert.ok(item.createdAt && item.updatedAt);
  assert.equal(await client.store.getItem(space, "missing"), null);
  const { items } = await client.store.searchItems(space, { filter: { role: "colorist" } });
  assert.deepEqual(
    items.map((found) => found.key),
    ["eva"],
  );
  const { namespaces } = await client.store.listNamespaces({ prefix: space });
  assert.deepEqual(namespaces.sort(), [space, [...space, "staff"]]);
  await client.store.deleteItem(space, "note");
  assert.equal(await client.store.getItem(space, "note"), null);
  await assert.rejects(
    client.store.searchItems(space, { query: "colorist" }),
    (error) => error.status === 422,
  );

  const contact = `${randomUUID().slice(0, 8)}@example.com`;
  const first = await client.threads.create();
  await client.runs.wait(first.thread_id, "agent", {
    input: ask(`haircut tomorrow at 17:00, I'm Rosa, ${contact}`),
  });
  const profile = await client.store.getItem(["customers"], contact);
  assert.equal(profile.value.name, "Rosa");
  const later = await client.threads.create();
  const greeted = await client.runs.wait(later.thread_id, "agent", {
    input: ask(`hi, it's ${contact}`),
  });
  assert.match(greeted.messages.at(-1).content, /^Welcome back, Rosa!.*haircut/);
});

test("errors are the SDK's errors with the HTTP status", async () => {
  await assert.rejects(client.threads.get(randomUUID()), (error) => error.status === 404);
  const thread = await client.threads.create();
  await assert.rejects(
    client.runs.create(thread.thread_id, "agent", { input: ask("hi"), streamMode: "nope" }),
    (error) => error.status === 422,
  );
  await assert.rejects(
    client.runs.wait(thread.thread_id, "agent", { input: ask("hi"), context: { language: "fr" } }),
    (error) => error.status === 422,
  );
  assert.deepEqual(await client.runs.list(thread.thread_id), []);
});
