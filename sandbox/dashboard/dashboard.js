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
    // Each part keeps together; the line wraps between parts (never cut with an ellipsis).
    sets.map((k) => el("div", { class: "key", title: k.description, "data-client-id": k.clientId },
      el("span", { class: `env env-${k.environment}` }, k.environment), " ",
      el("span", { class: "cid" }, k.clientId), " ",
      el("span", { class: "secret" }, `secret ${k.clientSecret}`), " ",
      k.subscriptionKeyPrimary
        ? el("span", { class: "secret" }, `sub ${k.subscriptionKeyPrimary} / ${k.subscriptionKeySecondary}`)
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

// The people: each test user with a link to their virtual phone (/_sandbox/phone/{phoneNumber}).
function renderPeople(users) {
  const rows = users.map((u) => el("tr", { "data-phone": u.phone_number },
    el("td", {}, u.name),
    el("td", {}, el("a", { href: `/_sandbox/phone/${encodeURIComponent(u.phone_number)}`, target: "_blank",
      rel: "noopener", title: `${u.name}'s virtual phone` }, `📱 ${u.phone_number}`)),
    el("td", {}, u.market), el("td", {}, u.age === undefined ? "" : String(u.age)), el("td", {}, u.role || "")));
  $("#people-rows").replaceChildren(...(rows.length ? rows : [emptyRow(5, "No test users in the fixture.")]));
}

// ---------------------------------------------------------------------------------------------
// 2. The matrix
// ---------------------------------------------------------------------------------------------
// One row per API, one column per key type and environment: the columns stay few however many APIs there are.
function renderMatrix(rows) {
  const apis = [...new Set(rows.map((r) => r.api))];
  const envs = [...new Set(rows.map((r) => r.environment))];
  const keyTypes = [...new Set(rows.map((r) => r.keyType))];
  const cell = new Map(rows.map((r) => [`${r.keyType}|${r.api}|${r.environment}`, r]));
  const head1 = el("tr", {}, el("th", { rowspan: 2 }, "API"),
    keyTypes.map((kt) => el("th", { colspan: envs.length }, `${kt} keys`)));
  const head2 = el("tr", {}, keyTypes.map(() => envs.map((env) => el("th", {}, env))));
  const body = apis.map((api) => el("tr", {}, el("th", {}, api),
    keyTypes.map((kt) => envs.map((env) => {
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

// A path may break after a slash, a "?" or an "&" (so ids stay whole where the column allows).
function pathNode(text) {
  const node = el("span", { class: "path" });
  for (const part of String(text).split(/(?<=[/?&])/)) node.append(part, document.createElement("wbr"));
  return node;
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
    el("td", {}, field(entry, "environment", "env") || "",
      // Over HTTPS or through the proxy: the host the call named, so `apitest.vipps.no` calls are told apart.
      entry.proxied || entry.scheme === "https"
        ? el("div", { class: "muted" }, `${entry.proxied ? "proxy " : ""}${entry.host || ""}`) : null),
    el("td", {}, el("strong", {}, field(entry, "method") || ""), " ", pathNode(field(entry, "path") || "")),
    el("td", { title: clientId ? `client_id ${clientId}` : "" }, keyType ? `${keyType} keys` : "–",
      owner ? el("div", { class: "muted" }, owner) : null),
    el("td", { class: "msn-cell" }, field(entry, "msn", "merchantSerialNumber") || ""),
    el("td", { class: `decision ${denied ? "deny" : (decision === undefined ? "" : "allow")}` },
      el("strong", {}, decisionText), rule ? el("span", { class: "muted rule" }, ` ${rule}`) : null,
      reason ? el("div", { class: "reason" }, reason) : null),
    el("td", { class: "num" }, field(entry, "status") ?? ""),
    el("td", { class: "num" }, field(entry, "latencyMs", "latency_ms", "latency") ?? ""));
}

// The dashboard's own reads: they never make the lists refresh (or each refresh would cause the next).
const OWN_READS = /^\/_sandbox\/(building|matrix|payments|product-orders|recurring\/agreements|clock|health|dashboard\/|$)/;
let lastSeenId = 0;

// The sandbox's own calls, hidden unless asked for: its control plane, and a browser asking for the icon.
function ownCall(entry) {
  const path = String(field(entry, "path") || "");
  return path.startsWith("/_sandbox") || path === "/favicon.ico";
}

async function refreshLog() {
  try {
    const data = await getJSON("/_sandbox/requests?limit=300");
    let entries = Array.isArray(data) ? data : (data.requests || data.entries || []);
    const fresh = entries.filter((e) => Number(e.id) > lastSeenId
      && !(field(e, "method") === "GET" && (OWN_READS.test(String(field(e, "path") || ""))
        || field(e, "path") === "/favicon.ico")));
    lastSeenId = Math.max(lastSeenId, ...entries.map((e) => Number(e.id) || 0));
    if (fresh.length) refreshLists();  // something happened: payments, orders or the clock may have changed
    if (!$("#log-show-control").checked) entries = entries.filter((e) => !ownCall(e));
    const newestFirst = entries.slice().sort((a, b) =>
      String(field(b, "time", "timestamp") || "").localeCompare(String(field(a, "time", "timestamp") || "")));
    const rows = Number($("#log-rows").value) || 15;
    $("#log-table tbody").replaceChildren(...newestFirst.slice(0, rows).map(logRow));
    const denied = entries.filter(isDenied).length;
    $("#log-status").textContent = `${entries.length} entries${denied ? `, ${denied} denied` : ""}`
      + (entries.length > rows ? ` (newest ${rows} shown)` : "");
  } catch (error) {
    $("#log-status").textContent = `request log unavailable (${error.message})`;
  }
}

// ---------------------------------------------------------------------------------------------
// 4. Payments, Recurring agreements, product orders and the clock
// ---------------------------------------------------------------------------------------------
// What a button did, shown beside its row until the next action on it (errors until dismissed).
const messages = new Map();
const GOOD_FOR_MS = 10_000;

// An error answer in plain words: the API's own sentence, never its JSON.
function plainWords(status, text) {
  let body;
  try { body = JSON.parse(text); } catch { body = undefined; }
  const parts = [];
  let code;
  if (body && typeof body === "object" && !Array.isArray(body)) {
    const main = body.detail || body.message || body.error_description || (body.result && body.result.message)
      || body.title;
    const extras = Array.isArray(body.extraDetails) ? body.extraDetails : [];
    for (const d of extras) {
      if (!d || typeof d !== "object") continue;
      const name = d.name ?? d.key;
      const reason = d.reason ?? d.value;
      if (name === "ErrorCode") code = reason;
      else if (reason !== undefined) parts.push(`${name}: ${reason}`);
    }
    if (typeof main === "string" && !/^See extraDetails/i.test(main)) parts.unshift(main);
  } else if (text && text.length < 300 && !/^\s*[<{[]/.test(text)) {
    parts.push(text.trim());
  }
  const said = parts.join(" ").trim() || "the sandbox refused it.";
  return `${said} (HTTP ${status}${code ? `, error code ${code}` : ""})`;
}

const DONE = { approve: "Approved", reject: "Rejected", expire: "Expired", complete: "Completed" };

async function act(path, action, key, what) {
  messages.delete(key);
  let message;
  try {
    const result = await post(path);
    if (result.status === 401) askForToken();
    message = result.ok ? { tone: "good", text: `${DONE[action] || "Done"}.` }
      : { tone: "bad", text: `Could not ${action} ${what}: ${plainWords(result.status, result.text)}` };
  } catch (error) {
    message = { tone: "bad", text: `Could not ${action} ${what}: the sandbox did not answer (${error.message}).` };
  }
  messages.set(key, { ...message, at: Date.now() });
  await refreshLists();
}

function rowMessage(key) {
  const message = messages.get(key);
  if (!message) return null;
  if (message.tone === "good" && Date.now() - message.at > GOOD_FOR_MS) {
    messages.delete(key);
    return null;
  }
  return el("div", { class: `row-message ${message.tone}`, role: message.tone === "bad" ? "alert" : "status",
    "data-message": message.tone },
  message.text, message.tone === "bad" ? el("button", { class: "link", type: "button", title: "dismiss",
    "aria-label": "dismiss", onclick: () => { messages.delete(key); refreshLists(); } }, "✕") : null);
}

function say(text, tone) {
  const node = $("#lists-status");
  node.textContent = text;
  node.hidden = !text;
  node.className = `row-message ${tone || "bad"}`;
}

// A virtual-clock time as date and time of day (UTC), on two short lines.
function when(iso) {
  if (!iso) return "";
  const [date, time] = String(iso).replace(/(\.\d+)?Z$/, "").split("T");
  return el("span", { class: "when", title: `${iso} (UTC)` }, el("span", { class: "nowrap" }, date), " ",
    el("span", { class: "nowrap" }, time || ""));
}

function statePill(state) {
  return el("span", { class: `state-pill state-${state}` }, state);
}

function money(amount) {
  if (!amount) return "";
  return `${(amount.value / 100).toFixed(2)} ${amount.currency}`;
}

function paymentRow(p) {
  // The dashboard lives on one port, so it names the environment in the path.
  const base = "/_sandbox/dashboard/payments/" + [p.environment, p.msn, p.reference].map(encodeURIComponent).join("/");
  const key = `payment|${p.environment}|${p.msn}|${p.reference}`;
  const open = p.state === "CREATED";
  const refusal = open ? p.approveRefusal : null;  // a magic amount: the landing page refuses it too
  const button = (action, cls, why) => el("button", { class: cls, type: "button", "data-action": action,
    disabled: !open || Boolean(why), title: why || (open ? null : `the payment is ${p.state}`),
    onclick: () => act(`${base}/${action}`, action, key, "this payment") }, action);
  return el("tr", { "data-reference": p.reference, "data-state": p.state },
    el("td", {}, el("div", { class: `env env-${p.environment}` }, p.environment || ""),
      el("div", { class: "msn-cell" }, p.msn)),
    el("td", {}, el("span", { class: "id" }, p.reference), p.description ? el("div", { class: "muted" }, p.description) : null),
    el("td", { class: "num" }, money(p.amount)), el("td", { class: "state" }, statePill(p.state)),
    el("td", {}, when(p.createdAt)),
    el("td", { class: "actions" },
      button("approve", "", refusal ? `Cannot be approved: ${refusal.reason}` : null),
      button("reject", "secondary"), button("expire", "secondary"),
      open ? el("a", { href: p.landingUrl, target: "_blank" }, "landing page ↗") : null,
      refusal ? el("div", { class: "why", "data-error-code": refusal.code },
        `Approve is off: ${refusal.reason}`) : null,
      rowMessage(key)));
}

function orderRow(o) {
  const base = `/_sandbox/product-orders/${encodeURIComponent(o.id)}`;
  // Vipps MobilePay completes only what the merchant submitted; anything not final can be rejected.
  const final = ["COMPLETED", "REJECTED", "EXPIRED"].includes(o.status);
  const key = `order|${o.id}`;
  return el("tr", { "data-order": o.id, "data-status": o.status },
    el("td", {}, el("a", { class: "id", href: o.page, target: "_blank" }, o.id)), el("td", {}, o.partner || ""),
    el("td", {}, o.merchant || "", o.salesUnit ? el("div", { class: "muted" }, `MSN ${o.salesUnit.msn}`) : null),
    el("td", { class: "state" }, statePill(o.status)), el("td", {}, when(o.createdAt)),
    el("td", { class: "actions" },
      el("button", { type: "button", "data-action": "complete", disabled: o.status !== "ORDER_SUBMITTED",
        title: o.status === "ORDER_SUBMITTED" ? null : "the merchant must submit the order first",
        onclick: () => act(`${base}/complete`, "complete", key, "this order") }, "complete"),
      el("button", { class: "secondary", type: "button", "data-action": "reject", disabled: final,
        onclick: () => act(`${base}/reject`, "reject", key, "this order") }, "reject"),
      rowMessage(key)));
}

function chargeItem(c) {
  return el("li", { "data-charge": c.id, "data-status": c.status },
    el("span", { class: "nowrap" }, c.due), " ", el("span", { class: "num" }, money(c.amount)), " ",
    statePill(c.status), c.type !== "RECURRING" ? el("span", { class: "muted" }, ` ${c.type}`) : null,
    c.failureReason ? el("span", { class: "why" }, ` ${c.failureReason}`) : null,
    el("div", { class: "muted id" }, c.id));
}

function agreementRow(a) {
  const more = a.chargeCount - a.charges.length;
  return el("tr", { "data-agreement": a.id, "data-status": a.status },
    el("td", {}, el("div", { class: `env env-${a.environment}` }, a.environment || ""),
      el("div", { class: "msn-cell" }, a.msn)),
    el("td", {}, el("span", { class: "id" }, a.id), el("div", { class: "muted" }, a.productName),
      a.confirmationUrl ? el("a", { href: a.confirmationUrl, target: "_blank" }, "confirmation page ↗") : null),
    el("td", { class: "num" }, a.price ? money(a.price) : a.pricingType,
      el("div", { class: "muted" }, a.pricingType === "LEGACY" ? a.interval : `${a.pricingType}, ${a.interval}`)),
    el("td", { class: "state" }, statePill(a.status)), el("td", {}, when(a.createdAt)),
    el("td", {}, a.charges.length ? el("ul", { class: "charges" }, a.charges.map(chargeItem)) : el("span",
      { class: "muted" }, "no charges"), more > 0 ? el("div", { class: "muted" }, `and ${more} older`) : null));
}

function emptyRow(columns, text) {
  return el("tr", {}, el("td", { colspan: columns, class: "muted" }, text));
}

// The payment feed is paged (newest first): the page shows the newest PAYMENTS_STEP, and more on request.
const PAYMENTS_STEP = 100;
const FEED_PAGE_MAX = 1000;  // the most one request of the feed may ask for
let paymentsWanted = PAYMENTS_STEP;

async function fetchPayments(wanted) {
  const rows = [];
  let before = null;
  let total = 0;
  while (rows.length < wanted) {
    const limit = Math.min(wanted - rows.length, FEED_PAGE_MAX);
    const page = await getJSON(`/_sandbox/payments?limit=${limit}`
      + (before === null ? "" : `&before=${encodeURIComponent(before)}`));
    rows.push(...page.payments);
    total = page.total;
    if (page.next === null || page.next === undefined) break;
    before = page.next;
  }
  return { rows, total };
}

let agreementsWanted = PAYMENTS_STEP;

async function fetchAgreements(wanted) {
  const rows = [];
  let before = null;
  let total = 0;
  while (rows.length < wanted) {
    const limit = Math.min(wanted - rows.length, FEED_PAGE_MAX);
    const page = await getJSON(`/_sandbox/recurring/agreements?limit=${limit}`
      + (before === null ? "" : `&before=${encodeURIComponent(before)}`));
    rows.push(...page.agreements);
    total = page.total;
    if (page.next === null || page.next === undefined) break;
    before = page.next;
  }
  return { rows, total };
}

function showMoreAgreements() {
  agreementsWanted += PAYMENTS_STEP;
  refreshLists();
}

function showMorePayments() {
  paymentsWanted += PAYMENTS_STEP;
  refreshLists();
}

async function refreshLists() {
  const problems = [];
  try {
    const { rows: payments, total } = await fetchPayments(paymentsWanted);
    $("#payments-table tbody").replaceChildren(...(payments.length ? payments.map(paymentRow)
      : [emptyRow(6, "No payments yet: create one with the ePayment API, or run a scenario.")]));
    $("#payments-count").textContent = !total ? ""
      : (payments.length < total ? `(newest ${payments.length} of ${total})` : `(${total})`);
    $("#payments-more").hidden = payments.length >= total;
  } catch (error) { problems.push(`The payments could not be read (${error.message}).`); }
  try {
    const { rows: agreements, total } = await fetchAgreements(agreementsWanted);
    $("#agreements-table tbody").replaceChildren(...(agreements.length ? agreements.map(agreementRow)
      : [emptyRow(6, "No Recurring agreements yet: draft one with the Recurring API, or run a scenario.")]));
    $("#agreements-count").textContent = !total ? ""
      : (agreements.length < total ? `(newest ${agreements.length} of ${total})` : `(${total})`);
    $("#agreements-more").hidden = agreements.length >= total;
  } catch (error) { problems.push(`The Recurring agreements could not be read (${error.message}).`); }
  try {
    const orders = await getJSON("/_sandbox/product-orders");
    $("#orders-table tbody").replaceChildren(...(orders.length ? orders.map(orderRow)
      : [emptyRow(6, "No product orders yet.")]));
    $("#orders-count").textContent = orders.length ? `(${orders.length})` : "";
  } catch (error) { problems.push(`The product orders could not be read (${error.message}).`); }
  say(problems.join(" "));
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

function duration(seconds) {
  if (seconds % 86400 === 0) return seconds === 86400 ? "1 day" : `${seconds / 86400} days`;
  if (seconds % 3600 === 0) return seconds === 3600 ? "1 hour" : `${seconds / 3600} hours`;
  return `${seconds} s`;
}

async function advanceClock() {
  const choice = $("#clock-step").value;
  let seconds = Number(choice);
  if (choice === "midnight") {
    const now = new Date((await getJSON("/_sandbox/clock")).now);
    const midnight = Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate() + 1);
    seconds = Math.ceil((midnight - now.getTime()) / 1000) + 1;
  }
  const node = $("#action-result");
  try {
    const result = await post("/_sandbox/clock", { advanceSeconds: seconds });
    if (result.status === 401) askForToken();
    node.className = `row-message ${result.ok ? "good" : "bad"}`;
    node.textContent = result.ok ? `The clock advanced by ${duration(seconds)}.`
      : `Could not advance the clock: ${plainWords(result.status, result.text)}`;
  } catch (error) {
    node.className = "row-message bad";
    node.textContent = `Could not advance the clock: the sandbox did not answer (${error.message}).`;
  }
  await refreshLists();
}

// Folded sections stay folded across reloads (a trainer folds the log once).
function rememberFolds() {
  for (const details of document.querySelectorAll("details.fold")) {
    const saved = localStorage.getItem(`vipps-sandbox-fold-${details.id}`);
    if (saved) details.open = saved === "open";
    details.addEventListener("toggle", () =>
      localStorage.setItem(`vipps-sandbox-fold-${details.id}`, details.open ? "open" : "closed"));
  }
}

async function start() {
  getJSON("/_sandbox/health").then((h) => { $("#env-name").textContent = h.environment; }).catch(() => {});
  getJSON("/_sandbox/building").then(renderBuilding)
    .catch((e) => { $("#building-tree").textContent = `unavailable (${e.message})`; });
  getJSON("/_sandbox/users").then(renderPeople)
    .catch((e) => { $("#people-rows").replaceChildren(emptyRow(5, `unavailable (${e.message})`)); });
  getJSON("/_sandbox/matrix").then(renderMatrix)
    .catch((e) => { $("#matrix-table").textContent = `unavailable (${e.message})`; });
  $("#clock-advance").addEventListener("click", advanceClock);
  $("#payments-more").addEventListener("click", showMorePayments);
  $("#agreements-more").addEventListener("click", showMoreAgreements);
  $("#log-show-control").addEventListener("change", refreshLog);
  $("#log-rows").addEventListener("change", refreshLog);
  rememberFolds();
  await Promise.all([refreshLog(), refreshLists()]);
  setInterval(refreshLog, 1000);
  setInterval(tickClock, 1000);
  setInterval(refreshLists, 15000);  // payments can also expire as the clock runs
}

start();
