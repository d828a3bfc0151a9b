// The agent desktop: a stand-in for SAP's IC WebClient. It speaks ICI SOAP exactly as SAP
// does (same envelopes, user header and all) through the admin listener's /agent/soap,
// and gets its events as SAP does: it subscribes with its own appURL, which the admin
// listener receives and streams here (Server-Sent Events). Every value from the switch or
// the connector is set through textContent, never as markup.
"use strict";

const SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/";
const NS = {
  User: "urn:IciUserInterface",
  Item: "urn:IciItemInterface",
  PhoneCall: "urn:IciPhoneCallInterface",
  Line: "urn:IciLineInterface",
};
// Calls that end a card.
const ENDED = new Set(["dropped", "transferred"]);
// At most six interactions reach an agent (the IC's six session slots).
const MAX_CARDS = 6;
// How long the notice line stays.
const NOTICE_MS = 8000;
// Lines the event log keeps (the oldest go first), so a tab left open for a shift stays light.
const MAX_LOG_LINES = 1000;

const desk = {
  user: null,
  extension: null,
  appURL: null,
  appId: "agent-desktop-" + Math.random().toString(36).slice(2, 10),
  subscribed: false,
  workmodes: [],
  reasons: [],
  capabilities: new Set(), // what the switch can do (getAttributes); empty: not told

  workmode: null,
  calls: new Map(), // callId -> last phoneCall (plain object)
  consults: new Map(), // held callId -> { consult, address }
  lastSeq: null,
  gaps: 0,
  simulator: false,
};

const $ = (id) => document.getElementById(id);

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v;
    else if (k === "data") for (const [dk, dv] of Object.entries(v)) node.dataset[dk] = dv;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function xmlEscape(text) {
  return String(text).replace(/[<>&"']/g, (c) =>
    ({ "<": "&lt;", ">": "&gt;", "&": "&amp;", '"': "&quot;", "'": "&apos;" })[c]);
}

// ---- SOAP, as SAP's BCB writes it ----------------------------------------------------

// params: [[name, value]], value a string or an array (SOAP items).
function envelope(iface, op, params) {
  const ns = NS[iface];
  const body = params
    .filter(([, v]) => v !== undefined && v !== null && v !== "")
    .map(([name, value]) => {
      const inner = Array.isArray(value)
        ? value.map((v) => `<item>${xmlEscape(v)}</item>`).join("")
        : xmlEscape(value);
      return `<${name} xmlns="${ns}">${inner}</${name}>`;
    })
    .join("");
  return `<?xml version="1.0" encoding="UTF-8" ?>` +
    `<SOAP-ENV:Envelope xmlns:SOAP-ENV="${SOAP_ENV}" ` +
    `xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">` +
    `<SOAP-ENV:Header>` +
    `<pre:user xmlns:pre="${ns}" SOAP-ENV:mustUnderstand="0" xsi:type="xsd:string">${xmlEscape(desk.user)}</pre:user>` +
    `<pre:language xmlns:pre="${ns}" SOAP-ENV:mustUnderstand="0" xsi:type="xsd:string">EN</pre:language>` +
    `</SOAP-ENV:Header><SOAP-ENV:Body><ns0:${op} xmlns:ns0="${ns}">${body}</ns0:${op}>` +
    `</SOAP-ENV:Body></SOAP-ENV:Envelope>`;
}

class Fault extends Error {}

// The first element child of an element, by local name.
function child(node, name) {
  if (!node) return null;
  for (const c of node.children) if (c.localName === name) return c;
  return null;
}
function text(node, name) {
  const c = child(node, name);
  return c ? c.textContent : "";
}
function items(node, name) {
  const c = child(node, name);
  return c ? Array.from(c.children) : [];
}
function bodyOperation(doc) {
  const body = doc.getElementsByTagNameNS(SOAP_ENV, "Body")[0];
  return body ? body.firstElementChild : null;
}

// Calls one ICI operation; answers its `return` element (or null), throws a Fault.
async function ici(iface, op, params) {
  const summary = `${op} ${params.map(([, v]) => (Array.isArray(v) ? v.join(",") : v)).filter(Boolean).join(" ")}`;
  let response;
  try {
    response = await fetch("soap", {
      method: "POST",
      headers: {
        "Content-Type": "text/xml; charset=UTF-8",
        SOAPAction: `"http://inqmy.com/soapdispatcher/rpc/bcbici/Ici${iface}Bean"`,
      },
      body: envelope(iface, op, params),
    });
  } catch (e) {
    logLine("fault", `→ ${summary}: no answer (${e.message})`);
    throw new Fault(`${op}: the connector did not answer`);
  }
  const xml = await response.text();
  const doc = new DOMParser().parseFromString(xml, "text/xml");
  const result = bodyOperation(doc);
  if (!result) {
    logLine("fault", `→ ${summary}: HTTP ${response.status}`);
    throw new Fault(`${op}: HTTP ${response.status} ${xml.slice(0, 200)}`);
  }
  if (result.localName === "Fault") {
    const detail = child(result, "detail");
    const message = text(result, "faultstring") + (detail && detail.textContent ? ` (${detail.textContent.trim()})` : "");
    logLine("fault", `→ ${summary}: ${message}`, xml);
    throw new Fault(`${op}: ${message}`);
  }
  logLine("out", `→ ${summary}: ok`, xml);
  return child(result, "return");
}

// ---- Login, workmodes, dial -----------------------------------------------------------

async function logIn(user, extension) {
  desk.user = user;
  desk.extension = extension;
  const attributes = await ici("User", "getAttributes", [["userId", user]]);
  readAttributes(attributes);
  await ici("User", "setAddresses", [["userId", user], ["addresses", [extension]]]);
  await subscribe();
  sessionStorage.setItem("ici-desktop", JSON.stringify({ user, extension }));
  $("agent-name").textContent = `${user} @ ${extension}`;
  $("login").hidden = true;
  $("agent").hidden = false;
  $("interactions").hidden = false;
  document.title = `${user} · agent desktop`;
  showWorkmode(desk.workmode, "");
  renderCards();
}

async function subscribe() {
  desk.lastSeq = null;
  await ici("User", "subscribeUser", [["userId", desk.user], ["appURL", desk.appURL], ["appId", desk.appId]]);
  desk.subscribed = true;
}

function readAttributes(attributes) {
  desk.workmodes = items(attributes, "workmodes").map((w) => ({
    id: text(w, "id"),
    text: text(w, "text"),
    selectable: text(w, "selectable") !== "false",
  }));
  desk.reasons = items(attributes, "reasons").map((r) => ({ code: text(r, "code"), text: text(r, "text") }));
  desk.workmode = text(attributes, "currentWorkmode");
  desk.capabilities = new Set(items(attributes, "capabilities").map((c) => c.textContent));
  $("dial-form").hidden = !can("makeCall");
  const select = $("workmode");
  select.replaceChildren(...desk.workmodes.map((w) => {
    const option = el("option", { value: w.id }, `${w.id} ${w.text}`);
    option.disabled = !w.selectable;
    return option;
  }));
  $("reason").replaceChildren(el("option", { value: "" }, "(none)"),
    ...desk.reasons.map((r) => el("option", { value: r.code }, `${r.code} ${r.text}`)));
  const queues = items(attributes, "queues").map((q) => q.textContent);
  for (const q of queues) addOption($("queues"), q);
  select.value = desk.workmode;
  updateReasonVisibility();
}

// Whether the switch can do `capability`: the desktop offers only those buttons, as the IC
// does with getAttributes' capability flags (Asterisk: answer and hold on the phone).
function can(capability) {
  return desk.capabilities.size === 0 || desk.capabilities.has(capability);
}

function addOption(datalist, value) {
  if (!Array.from(datalist.options).some((o) => o.value === value)) datalist.append(el("option", { value }));
}

function updateReasonVisibility() {
  $("reason-label").hidden = !($("workmode").value === "3" && desk.reasons.length > 0);
}

function showWorkmode(id, reason) {
  desk.workmode = id;
  const mode = desk.workmodes.find((w) => w.id === id);
  const badge = $("workmode-badge");
  badge.hidden = false;
  badge.textContent = (mode ? mode.text : `workmode ${id}`) + (reason ? ` (${reasonText(reason)})` : "");
  badge.className = "badge " + (id === "2" ? "ok" : id === "1" ? "bad" : "wait");
  badge.dataset.workmode = id;
  badge.dataset.reason = reason || "";
}

function reasonText(code) {
  const r = desk.reasons.find((x) => x.code === code);
  return r ? r.text : code;
}

async function setWorkmode() {
  const workmode = $("workmode").value;
  const reason = workmode === "3" ? $("reason").value : "";
  await ici("User", "setCurrentWorkmode", [["userId", desk.user], ["workmode", workmode], ["reason", reason]]);
}

async function logOff() {
  await ici("User", "setCurrentWorkmode", [["userId", desk.user], ["workmode", "1"]]);
  await ici("User", "unsubscribeUser", [["userId", desk.user], ["appURL", desk.appURL], ["appId", desk.appId]]);
  desk.subscribed = false;
  desk.calls.clear();
  desk.consults.clear();
  sessionStorage.removeItem("ici-desktop");
  $("agent").hidden = true;
  $("interactions").hidden = true;
  $("login").hidden = false;
  $("workmode-badge").hidden = true;
  $("agent-name").textContent = "";
}

async function dial(address) {
  await ici("PhoneCall", "dial", [["userId", desk.user], ["address", address]]);
}

// ---- Events ----------------------------------------------------------------------------

function connectStream() {
  const source = new EventSource("stream");
  source.addEventListener("hello", (e) => {
    const hello = JSON.parse(e.data);
    const old = desk.appURL;
    desk.appURL = hello.appURL;
    $("app-url").textContent = desk.appURL;
    setBadge("stream", "ok", "open");
    $("login-button").disabled = false;
    logLine("info", `event stream open; appURL ${desk.appURL}`);
    // A new stream is a new appURL: the old one is gone (the connector would hear 401
    // there at its next event); move the subscription over.
    if (old !== null && desk.subscribed) {
      ici("User", "unsubscribeUser", [["userId", desk.user], ["appURL", old], ["appId", desk.appId]])
        .catch(() => {})
        .then(subscribe)
        .then(
        () => notice("The event stream reconnected; subscribed again with the new appURL.", true),
        (err) => notice(err.message));
    }
  });
  source.addEventListener("ici", (e) => onIciEvent(JSON.parse(e.data).xml));
  source.addEventListener("error", () => setBadge("stream", "bad", "reconnecting"));
}

function onIciEvent(xml) {
  const doc = new DOMParser().parseFromString(xml, "text/xml");
  const op = bodyOperation(doc);
  if (!op) {
    logLine("fault", "unreadable event", xml);
    return;
  }
  const seq = Number(text(op, "sequence"));
  const mark = checkSequence(seq);
  let summary = op.localName;
  switch (op.localName) {
    case "phoneCallChanged": {
      const call = readCall(child(op, "phoneCall"), text(op, "attachedData"));
      summary += ` ${call.callId} ${call.state}${call.reason ? ` (${call.reason})` : ""}`;
      onCall(call);
      break;
    }
    case "workmodeChanged": {
      const reason = text(op, "reason");
      summary += ` ${text(op, "workmode")}${reason ? ` (${reason})` : ""}`;
      showWorkmode(text(op, "workmode"), reason);
      $("workmode").value = text(op, "workmode");
      updateReasonVisibility();
      break;
    }
    case "subscriptionEnded": {
      const reason = text(op, "reason");
      summary += ` (${reason})`;
      desk.subscribed = false;
      notice(`The connector ended this desktop's subscription: ${reason}. Log in again.`);
      break;
    }
    default:
      break;
  }
  logLine("in", summary, xml, seq, mark);
  if (desk.simulator) refreshSimCalls();
}

// Sequence numbers of one subscription go 1, 2, 3, ...: a jump is a gap, a repeat a
// duplicate (a retried delivery). Both are shown.
function checkSequence(seq) {
  let mark = "";
  if (desk.lastSeq !== null && seq !== desk.lastSeq + 1) {
    mark = seq <= desk.lastSeq ? `repeat (after ${desk.lastSeq})` : `gap: ${desk.lastSeq + 1}–${seq - 1} missing`;
    desk.gaps += 1;
    setBadge("gaps", "bad", `${desk.gaps} gap${desk.gaps === 1 ? "" : "s"}`);
  }
  if (desk.lastSeq === null || seq > desk.lastSeq) desk.lastSeq = seq;
  $("seq").textContent = `seq ${desk.lastSeq}`;
  return mark;
}

function readCall(node, attachedData) {
  return {
    callId: text(node, "callId"),
    state: text(node, "state"),
    direction: text(node, "direction"),
    remote: text(node, "remoteAddress"),
    remoteRaw: text(node, "remoteAddressRaw"),
    dialed: text(node, "dialedAddress"),
    dialedRaw: text(node, "dialedAddressRaw"),
    queue: text(node, "queue"),
    reason: text(node, "reason"),
    parties: items(node, "parties").map((p) => p.textContent),
    attachedData: attachedData || text(node, "attachedData"),
  };
}

function onCall(call) {
  if (ENDED.has(call.state)) {
    desk.calls.delete(call.callId);
    desk.consults.delete(call.callId);
    for (const [held, c] of desk.consults) if (c.consult === call.callId) desk.consults.delete(held);
  } else {
    desk.calls.set(call.callId, call);
  }
  renderCards();
}

// ---- Interaction cards ---------------------------------------------------------------

function renderCards() {
  const cards = Array.from(desk.calls.values()).slice(0, MAX_CARDS).map(card);
  $("cards").replaceChildren(...cards);
  $("no-cards").hidden = cards.length > 0;
  $("card-count").textContent = cards.length ? `${cards.length} of ${MAX_CARDS}` : "";
}

function consultOf(callId) {
  for (const [held, c] of desk.consults) if (c.consult === callId) return { held, ...c };
  return null;
}

function card(call) {
  const node = el("div", { class: "card", data: { callId: call.callId, state: call.state } },
    el("div", { class: "top" },
      el("span", { class: "state" }, call.state),
      el("span", { class: "muted small" }, `${call.direction} · ${call.callId}`)),
    el("div", { class: "number" }, call.remote || "(unknown)"),
    el("dl", {},
      el("dt", {}, "raw"), el("dd", { class: "mono" }, call.remoteRaw || "–"),
      el("dt", {}, "dialed"), el("dd", {}, `${call.dialed || "–"}${call.dialedRaw ? ` (${call.dialedRaw})` : ""}`),
      el("dt", {}, "queue"), el("dd", {}, call.queue || "–"),
      call.parties.length ? el("dt", {}, "parties") : null,
      call.parties.length ? el("dd", { class: "mono" }, call.parties.join(", ")) : null),
    attachedDataView(call.attachedData),
    buttons(call));
  return node;
}

// Attached data (<ItemAttachedData><Application id="IVR">...</Application>...) as a readable
// tree; the raw text when it is not XML.
function attachedDataView(data) {
  if (!data) return null;
  const doc = new DOMParser().parseFromString(data, "text/xml");
  const root = doc.documentElement;
  const box = el("div", { class: "data" });
  if (!root || root.getElementsByTagName("parsererror").length) {
    box.append(el("span", { class: "mono" }, data));
    return box;
  }
  const apps = Array.from(root.children).filter((c) => c.localName === "Application");
  if (!apps.length) box.append(el("span", { class: "muted" }, "no attached data"));
  for (const app of apps) {
    box.append(el("div", { class: "app" }, app.getAttribute("id") || "Application"), tree(app));
  }
  return box;
}

function tree(node) {
  const list = el("ul");
  for (const c of node.children) {
    if (c.children.length) list.append(el("li", {}, c.localName, tree(c)));
    else list.append(el("li", {}, `${c.localName}: `, el("b", {}, c.textContent)));
  }
  if (!node.children.length && node.textContent.trim()) list.append(el("li", {}, node.textContent.trim()));
  return list;
}

function button(label, action, cls) {
  return el("button", {
    type: "button",
    class: cls || "",
    onclick: (e) => {
      e.target.disabled = true;
      action().catch((err) => notice(err.message)).finally(() => { e.target.disabled = false; });
    },
  }, label);
}

// The buttons valid for the call's state, as the IC offers them.
function buttons(call) {
  const id = call.callId;
  const box = el("div", { class: "buttons" });
  const target = el("input", { placeholder: "to 2002", "aria-label": "transfer or consult to" });
  const address = () => {
    const value = target.value.trim();
    if (!value) throw new Fault("type a number or extension first");
    return value;
  };
  const phone = (op, params) => ici("PhoneCall", op, [["callId", id], ...params]);
  const drop = () => button("Drop", () => phone("drop", []), "danger");
  const offer = (capability, ...nodes) => { if (can(capability)) box.append(...nodes); };
  const consulting = desk.consults.get(id); // this call is held for a consultation
  const consultCall = consultOf(id); // this call is the consultation
  const pair = consulting ? { held: id, ...consulting } : consultCall;
  switch (call.state) {
    case "alerting":
      if (call.direction !== "outbound") {
        offer("answer", button("Accept", () => ici("Item", "accept", [["itemId", id]])));
        if (call.queue) offer("reroute", button("Reroute", () => ici("Item", "reroute", [["itemId", id]]), "secondary"));
      }
      offer("clear", drop());
      break;
    case "dialing":
      offer("clear", drop());
      break;
    case "connected":
      if (!pair) offer("hold", button("Hold", () => phone("hold", [])));
      offer("clear", drop());
      if (!pair && (can("blindTransfer") || can("consult"))) {
        box.append(target);
        offer("blindTransfer", button("Transfer", () => phone("transfer", [["address", address()]]), "secondary"));
        offer("consult", button("Consult", async () => {
          const to = address();
          const consult = await phone("consult", [["address", to]]);
          if (consult) desk.consults.set(id, { consult: consult.textContent, address: to });
          renderCards();
        }, "secondary"));
      }
      break;
    case "held":
      offer("hold", button("Unhold", () => phone("unhold", [])));
      offer("clear", drop());
      break;
    case "conferenced":
      offer("clear", drop());
      break;
    default:
      break;
  }
  if (pair) {
    const both = [["callId", pair.held], ["consultCallId", pair.consult]];
    // Transfer completes the warm transfer: the held customer and the consulted party are
    // joined, the agent leaves.
    box.append(button("Transfer", () => ici("PhoneCall", "transfer", [["callId", pair.held], ["address", pair.address]])));
    offer("conference", button("Conference", () => ici("PhoneCall", "conference", both), "secondary"));
    offer("hold", button("Alternate", () => ici("PhoneCall", "alternate", both), "secondary"));
    if (can("hold") && can("clear")) box.append(button("Reconnect", () => ici("PhoneCall", "reconnect", both), "secondary"));
  }
  if (call.state !== "dropped") {
    box.append(button("Attach note", async () => {
      const note = window.prompt("Note to attach (Application SAP-IC)");
      if (!note) return;
      const data = `<ItemAttachedData><Application id="SAP-IC"><note>${xmlEscape(note)}</note></Application></ItemAttachedData>`;
      await ici("Item", "setAttachedData", [["itemId", id], ["attachedData", data]]);
    }, "link"));
  }
  return box;
}

// ---- The simulator's caller panel ----------------------------------------------------

async function loadInfo() {
  const response = await fetch("info");
  const info = await response.json();
  desk.simulator = info.simulator;
  for (const ext of info.extensions || []) addOption($("extensions"), ext);
  for (const q of info.queues || []) addOption($("queues"), q);
  $("caller").hidden = !desk.simulator;
  if (desk.simulator) refreshSimCalls();
}

async function sim(method, path, body) {
  const response = await fetch(`../sim${path}`, {
    method,
    headers: body ? { "Content-Type": "application/json" } : {},
    body: body ? JSON.stringify(body) : undefined,
  });
  const value = await response.json().catch(() => ({}));
  if (!response.ok) throw new Fault(`simulator: ${value.error || response.status}`);
  return value;
}

async function placeCall() {
  const body = { from: $("caller-from").value.trim() };
  body[$("caller-kind").value] = $("caller-target").value.trim();
  const data = $("caller-data").value.trim();
  if (data) body.attributes = { Sap_Cad: data };
  const answer = await sim("POST", "/calls", body);
  logLine("info", `caller: ${answer.callId} from ${body.from} to ${body.queue || body.to}`);
  await refreshSimCalls();
}

let refreshing = null;
function refreshSimCalls() {
  // One refresh at a time; events come in bursts.
  if (!refreshing) {
    refreshing = sim("GET", "/calls").then(showSimCalls, () => {}).finally(() => { refreshing = null; });
  }
  return refreshing;
}

function showSimCalls(answer) {
  const rows = (answer.calls || []).map((c) => {
    const id = c.id;
    const parties = c.parties || [];
    const external = parties.find((p) => p.kind === "external");
    const agents = parties.filter((p) => p.kind === "extension").map((p) => `${p.address} ${p.state}`);
    const actions = el("td");
    if (external && external.state === "ringing") {
      actions.append(button("Answer", () => sim("POST", `/calls/${encodeURIComponent(id)}/answer`).then(refreshSimCalls), "secondary"));
    }
    if (external) {
      actions.append(button("Hang up", () => sim("POST", `/calls/${encodeURIComponent(id)}/hangup`).then(refreshSimCalls), "danger"));
    }
    return el("tr", { data: { callId: id } },
      el("td", { class: "mono" }, id),
      el("td", { class: "mono" }, external ? external.address : c.direction),
      el("td", {}, [c.queue ? `queue ${c.queue}` : "", ...agents].filter(Boolean).join(", ")),
      el("td", {}, c.waiting ? "waiting in queue" : external ? external.state : "internal"),
      actions);
  });
  document.querySelector("#sim-calls tbody").replaceChildren(...rows);
}

// ---- Log and notices -----------------------------------------------------------------

function logLine(kind, summary, xml, seq, mark) {
  const time = new Date().toLocaleTimeString();
  const line = el("li", { class: `${kind}${mark ? " gap" : ""}`, data: seq !== undefined ? { seq: String(seq) } : {} },
    el("span", { class: "seq" }, seq !== undefined ? `#${seq}` : ""),
    el("span", { class: "time" }, time),
    summary,
    mark ? el("span", { class: "flag" }, mark) : null);
  if (xml) line.append(" ", el("details", {}, el("summary", { class: "muted" }, "xml"), el("pre", {}, xml)));
  const log = $("log");
  log.prepend(line);
  while (log.childElementCount > MAX_LOG_LINES) log.lastElementChild.remove();
}

let noticeTimer = null;
function notice(message, info) {
  const box = $("notice");
  box.textContent = message;
  box.className = info ? "notice info" : "notice";
  box.hidden = false;
  clearTimeout(noticeTimer);
  noticeTimer = setTimeout(() => { box.hidden = true; }, NOTICE_MS);
}

function setBadge(id, kind, label) {
  const badge = $(id);
  badge.className = `badge ${kind}`;
  badge.textContent = label;
}

// ---- Start -----------------------------------------------------------------------------

function submit(form, action) {
  $(form).addEventListener("submit", (e) => {
    e.preventDefault();
    action().catch((err) => notice(err.message));
  });
}

submit("login-form", () => logIn($("login-user").value.trim(), $("login-extension").value.trim()));
submit("workmode-form", setWorkmode);
submit("dial-form", () => dial($("dial-address").value.trim()));
submit("caller-form", placeCall);
$("logoff").addEventListener("click", () => logOff().catch((err) => notice(err.message)));
$("workmode").addEventListener("change", updateReasonVisibility);
$("log-clear").addEventListener("click", () => $("log").replaceChildren());
const saved = JSON.parse(sessionStorage.getItem("ici-desktop") || "null");
if (saved) {
  $("login-user").value = saved.user;
  $("login-extension").value = saved.extension;
}
renderCards();
connectStream();
loadInfo().catch((err) => notice(`cannot read /agent/info: ${err.message}`));
