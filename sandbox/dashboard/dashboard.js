// The vipps-sandbox dashboard: reads the control plane's JSON feeds and renders them.
// Plain JS, no libraries, no CDN. Every value is inserted as text (never HTML), because payment
// descriptions and other fields come from API callers.
"use strict";

const $ = (sel) => document.querySelector(sel);

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

// Off loopback (as in Docker) the control plane needs the admin token printed at start.
function authHeaders() {
  const token = sessionStorage.getItem("vipps-sandbox-admin-token");
  return token ? { Authorization: `Bearer ${token}` } : {};
}

let askedForToken = false;
function askForToken() {
  if (askedForToken) return;
  askedForToken = true;
  sessionStorage.removeItem("vipps-sandbox-admin-token");  // missing or wrong: ask again
  const token = window.prompt("This sandbox's control plane needs its admin token (printed at start):");
  if (token) {
    sessionStorage.setItem("vipps-sandbox-admin-token", token.trim());
    window.location.reload();
  }
}

async function getJSON(path) {
  const response = await fetch(path, { cache: "no-store", headers: authHeaders() });
  if (response.status === 401) askForToken();
  if (!response.ok) throw new Error(`${path}: HTTP ${response.status}`);
  return response.json();
}

async function post(path, body) {
  const response = await fetch(path, {
    method: "POST", headers: { "Content-Type": "application/json", ...authHeaders() },
    body: body === undefined ? "{}" : JSON.stringify(body),
  });
  const text = await response.text();
  return { ok: response.ok, status: response.status, text };
}

// ---------------------------------------------------------------------------------------------
// 1. The building
// ---------------------------------------------------------------------------------------------

function ring(keys) {
  if (!keys || keys.length === 0) return null;
  // One ring per owner: what the keys open is said once, each key set is one line.
  const byType = new Map();
  for (const k of keys) byType.set(k.type, [...(byType.get(k.type) || []), k]);
  return [...byType.entries()].map(([type, sets]) => el("div", { class: `ring ring-${type}` },
    el("div", { class: "ring-title" }, el("span", { class: `keytype kt-${type}` }, `${type} keys`),
      ` open ${sets[0].opens}`),
    sets.map((k) => el("div", { class: "key", title: k.description, "data-client-id": k.clientId },
      el("span", { class: `env env-${k.environment}` }, k.environment), " ",
      el("span", { class: "cid" }, k.clientId), " ",
      el("span", { class: "secret" }, `secret ${k.clientSecret}`),
      k.subscriptionKeyPrimary
        ? el("span", { class: "secret" }, ` · sub ${k.subscriptionKeyPrimary} / ${k.subscriptionKeySecondary}`)
        : null))));
}

function merchantNode(m) {
  return el("div", { class: `merchant${m.status === "ACTIVE" ? "" : " deactivated"}` },
    el("div", {}, el("strong", {}, m.name), " ", el("span", { class: "muted" }, m.key), " ",
      m.role ? el("span", { class: "role" }, m.role) : null, " ",
      m.status === "ACTIVE" ? null : el("span", { class: "badge" }, m.status)),
    ring(m.ring),
    m.salesUnits.map((u) => el("div", { class: "door", "data-msn": u.msn },
      el("span", { class: "msn" }, u.msn), ` ${u.name} (${u.market}, ${u.currency}) `,
      u.role ? el("span", { class: "role" }, u.role) : null,
      ring(u.ring))));
}

function renderBuilding(data) {
  const floors = data.partners.map((p) => el("div", { class: "floor", "data-partner": p.id },
    el("h4", {}, `${p.name} `, el("span", { class: "badge" }, p.level), " ",
      p.role ? el("span", { class: "role" }, p.role) : null),
    el("div", { class: "muted" }, p.id,
      p.actOnBehalfApproved ? " · approved to act on behalf" : " · not approved to act on behalf",
      p.accounting ? " · accounting partner" : ""),
    ring(p.ring),
    p.ledgerRoom.length ? el("div", { class: "muted" },
      "ledger room: ", p.ledgerRoom.map((c) => c.name).join(", ")) : null,
    p.merchants.map(merchantNode)));
  if (data.independent.length) {
    floors.push(el("div", { class: "floor" }, el("h4", {}, "Merchants without a partner"),
      data.independent.map(merchantNode)));
  }
  $("#building-tree").replaceChildren(...floors);
}

// ---------------------------------------------------------------------------------------------
// 2. The matrix
// ---------------------------------------------------------------------------------------------
function renderMatrix(rows) {
  const apis = [...new Set(rows.map((r) => r.api))];
  const envs = [...new Set(rows.map((r) => r.environment))];
  const keyTypes = [...new Set(rows.map((r) => r.keyType))];
  const cell = new Map(rows.map((r) => [`${r.keyType}|${r.api}|${r.environment}`, r]));
  const head1 = el("tr", {}, el("th", { rowspan: 2 }, "key type"),
    apis.map((api) => el("th", { colspan: envs.length }, api)));
  const head2 = el("tr", {}, apis.map(() => envs.map((env) => el("th", {}, env))));
  const body = keyTypes.map((kt) => el("tr", {}, el("th", {}, `${kt} keys`),
    apis.map((api) => envs.map((env) => {
      const r = cell.get(`${kt}|${api}|${env}`);
      if (!r) return el("td", {}, "–");
      return el("td", { class: r.allowed ? "allow" : "deny", title: r.reason,
        "data-key-type": kt, "data-api": api, "data-env": env },
        r.allowed ? "✓ allow" : "✗ deny", el("div", { class: "reason" }, r.reason));
    }))));
  $("#matrix-table").replaceChildren(el("table", { class: "grid", id: "matrix-grid" },
    el("thead", {}, head1, head2), el("tbody", {}, body)));
}

// ---------------------------------------------------------------------------------------------
// 3. Live request log (polling every second)
// ---------------------------------------------------------------------------------------------
function field(entry, ...names) {
  for (const name of names) {
    let value = entry;
    for (const part of name.split(".")) value = value == null ? undefined : value[part];
    if (value !== undefined && value !== null && value !== "") return value;
  }
  return undefined;
}

function isDenied(entry) {
  const decision = field(entry, "decision.allowed", "decision.outcome", "decision");
  return decision === false || decision === "deny" || decision === "denied";
}

function logRow(entry) {
  const denied = isDenied(entry);
  const time = String(field(entry, "time", "timestamp") || "");
  const keyType = field(entry, "caller.keyType", "caller.type", "keyType");
  const owner = field(entry, "caller.owner", "owner");
  const clientId = field(entry, "caller.clientId", "caller.client_id", "clientId");
  const decision = field(entry, "decision.outcome", "decision");
  const decisionText = typeof decision === "string" ? decision
    : (decision === undefined ? "–" : (denied ? "deny" : "allow"));
  // Let through by the policy, then refused by the handler: show that refusal instead.
  const handlerError = !denied && field(entry, "error.rule") ? entry.error : null;
  const rule = handlerError ? handlerError.rule : field(entry, "decision.rule", "rule");
  const reason = handlerError ? handlerError.reason : field(entry, "decision.reason", "reason");
  return el("tr", { class: denied ? "denied" : "", "data-path": field(entry, "path") },
    el("td", { title: time }, time.replace(/^.*T/, "").replace(/\.\d+Z?$/, "")),
    el("td", {}, field(entry, "environment", "env") || ""),
    el("td", {}, el("span", { class: "path" }, `${field(entry, "method") || ""} ${field(entry, "path") || ""}`)),
    el("td", { title: clientId ? `client_id ${clientId}` : "" }, keyType ? `${keyType} keys` : "–",
      owner ? el("span", { class: "muted" }, ` · ${owner}`) : null),
    el("td", {}, field(entry, "msn", "merchantSerialNumber") || ""),
    el("td", { class: `decision ${denied ? "deny" : (decision === undefined ? "" : "allow")}` },
      el("strong", {}, decisionText), rule ? el("span", { class: "muted" }, ` ${rule}`) : null,
      reason ? el("div", { class: "reason" }, reason) : null),
    el("td", {}, field(entry, "status") ?? ""),
    el("td", {}, field(entry, "latencyMs", "latency_ms", "latency") ?? ""));
}

// The dashboard's own reads: they never make the lists refresh (or each refresh would cause the next).
const OWN_READS = /^\/_sandbox\/(building|matrix|payments|product-orders|clock|health|dashboard\/|$)/;
let lastSeenId = 0;

async function refreshLog() {
  try {
    const data = await getJSON("/_sandbox/requests?limit=300");
    let entries = Array.isArray(data) ? data : (data.requests || data.entries || []);
    const fresh = entries.filter((e) => Number(e.id) > lastSeenId
      && !(field(e, "method") === "GET" && OWN_READS.test(String(field(e, "path") || ""))));
    lastSeenId = Math.max(lastSeenId, ...entries.map((e) => Number(e.id) || 0));
    if (fresh.length) refreshLists();  // something happened: payments, orders or the clock may have changed
    if (!$("#log-show-control").checked) {
      entries = entries.filter((e) => !String(field(e, "path") || "").startsWith("/_sandbox"));
    }
    const newestFirst = entries.slice().sort((a, b) =>
      String(field(b, "time", "timestamp") || "").localeCompare(String(field(a, "time", "timestamp") || "")));
    $("#log-table tbody").replaceChildren(...newestFirst.slice(0, 100).map(logRow));
    $("#log-status").textContent = `${entries.length} entries`;
  } catch (error) {
    $("#log-status").textContent = `request log unavailable (${error.message})`;
  }
}

// ---------------------------------------------------------------------------------------------
// 4. Payments, product orders and the clock
// ---------------------------------------------------------------------------------------------
function say(text) { $("#action-result").textContent = text; }

async function act(path, label) {
  const result = await post(path);
  say(`${label}: HTTP ${result.status}${result.ok ? "" : " " + result.text}`);
  await refreshLists();
}

function money(amount) {
  if (!amount) return "";
  return `${(amount.value / 100).toFixed(2)} ${amount.currency}`;
}

function paymentRow(p) {
  // The dashboard lives on one port, so it names the environment in the path.
  const base = "/_sandbox/dashboard/payments/" + [p.environment, p.msn, p.reference].map(encodeURIComponent).join("/");
  const open = p.state === "CREATED";
  const button = (action, cls) => el("button", { class: cls, "data-action": action, disabled: !open,
    onclick: () => act(`${base}/${action}`, `${action} ${p.reference}`) }, action);
  return el("tr", { "data-reference": p.reference, "data-state": p.state },
    el("td", {}, p.environment || ""), el("td", {}, p.msn), el("td", { class: "path" }, p.reference,
      p.description ? el("div", { class: "muted" }, p.description) : null),
    el("td", {}, money(p.amount)), el("td", { class: "state" }, p.state), el("td", {}, p.createdAt || ""),
    el("td", {}, button("approve"), button("reject", "secondary"), button("expire", "secondary"),
      open ? el("a", { href: p.landingUrl, target: "_blank" }, "landing page") : null));
}

function orderRow(o) {
  const base = `/_sandbox/product-orders/${encodeURIComponent(o.id)}`;
  // Vipps MobilePay completes only what the merchant submitted; anything not final can be rejected.
  const final = ["COMPLETED", "REJECTED", "EXPIRED"].includes(o.status);
  return el("tr", { "data-order": o.id, "data-status": o.status },
    el("td", { class: "path" }, el("a", { href: o.page, target: "_blank" }, o.id)), el("td", {}, o.partner || ""),
    el("td", {}, o.merchant || "", o.salesUnit ? el("div", { class: "muted" }, `MSN ${o.salesUnit.msn}`) : null),
    el("td", { class: "state" }, o.status), el("td", {}, o.createdAt || ""),
    el("td", {},
      el("button", { "data-action": "complete", disabled: o.status !== "ORDER_SUBMITTED",
        title: "the merchant must submit the order first",
        onclick: () => act(`${base}/complete`, `complete ${o.id}`) }, "complete"),
      el("button", { class: "secondary", "data-action": "reject", disabled: final,
        onclick: () => act(`${base}/reject`, `reject ${o.id}`) }, "reject")));
}

function emptyRow(columns, text) {
  return el("tr", {}, el("td", { colspan: columns, class: "muted" }, text));
}

async function refreshLists() {
  try {
    const payments = await getJSON("/_sandbox/payments");
    $("#payments-table tbody").replaceChildren(...(payments.length ? payments.map(paymentRow)
      : [emptyRow(7, "No payments yet.")]));
  } catch (error) { say(`payments unavailable (${error.message})`); }
  try {
    const orders = await getJSON("/_sandbox/product-orders");
    $("#orders-table tbody").replaceChildren(...(orders.length ? orders.map(orderRow)
      : [emptyRow(6, "No product orders yet.")]));
  } catch (error) { say(`product orders unavailable (${error.message})`); }
  try {
    const clock = await getJSON("/_sandbox/clock");
    clockState = { offset: new Date(clock.now).getTime() - Date.now(), frozen: clock.frozen, now: clock.now };
    tickClock();
  } catch (error) { $("#clock-now").textContent = "unavailable"; }
}

// The virtual clock runs in real time plus an offset (or stands still when frozen): tick it locally.
let clockState = null;
function tickClock() {
  if (!clockState) return;
  const now = clockState.frozen ? new Date(clockState.now) : new Date(Date.now() + clockState.offset);
  $("#clock-now").textContent = now.toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC");
  $("#clock-frozen").textContent = clockState.frozen ? "(frozen)" : "";
}

async function advanceClock() {
  const choice = $("#clock-step").value;
  let seconds = Number(choice);
  if (choice === "midnight") {
    const now = new Date((await getJSON("/_sandbox/clock")).now);
    const midnight = Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate() + 1);
    seconds = Math.ceil((midnight - now.getTime()) / 1000) + 1;
  }
  const result = await post("/_sandbox/clock", { advanceSeconds: seconds });
  say(`clock advanced by ${seconds} s: HTTP ${result.status}`);
  await refreshLists();
}

async function start() {
  getJSON("/_sandbox/health").then((h) => { $("#env-name").textContent = h.environment; }).catch(() => {});
  getJSON("/_sandbox/building").then(renderBuilding)
    .catch((e) => { $("#building-tree").textContent = `unavailable (${e.message})`; });
  getJSON("/_sandbox/matrix").then(renderMatrix)
    .catch((e) => { $("#matrix-table").textContent = `unavailable (${e.message})`; });
  $("#clock-advance").addEventListener("click", advanceClock);
  $("#log-show-control").addEventListener("change", refreshLog);
  await Promise.all([refreshLog(), refreshLists()]);
  setInterval(refreshLog, 1000);
  setInterval(tickClock, 1000);
  setInterval(refreshLists, 15000);  // payments can also expire as the clock runs
}

start();
