// Drives the sandbox with the official SDK, exactly as a merchant's app would, and prints one JSON
// line per SDK call: {"step": ..., "ok": true, "data": ...} or {"step": ..., "ok": false, "error": ...}.
//
// Run: node --import ./rewrite-hosts.mjs driver.mjs <scenario> [reference-prefix]
// Scenarios:
//   flow        token, create, info, history, forceApprove, partial capture, partial refund, cancel, a payment
//               captured and refunded in full,
//               then the error paths: capture before approve, over-capture, an unknown reference
//   production  token and create with partner keys and Merchant-Serial-Number (useTestMode false)
//   settle      token, full capture, partial refund and info of the payment `production` created
//   webhooks    token, webhook.register, list, delete, list
//   recurring   token and all 13 Recurring calls: agreement.create (with a RESERVE_CAPTURE initial charge), list,
//               info, forceAccept, charge.create, createMultiple, info, infoById, list, capture and refund (the
//               initial charge), cancel, agreement.update (STOPPED). With VIPPS_AGREEMENT_ID (an agreement the
//               user approved on the confirmation page), every call but create and forceAccept, on that one
//               (production, where the SDK refuses forceAccept itself).
//   checkout    the two Checkout v3 calls (sdk-requests.md #12, #13): checkout.create (the SDK fills
//               transaction.reference), checkout.info of it, a duplicate create (409), info of an unknown reference
// Credentials: VIPPS_CLIENT_ID, VIPPS_CLIENT_SECRET, VIPPS_SUBSCRIPTION_KEY, VIPPS_MSN;
// VIPPS_TEST_MODE ("true" unless "false"), VIPPS_CURRENCY (default NOK), VIPPS_WEBHOOK_URL.

import { Client } from "@vippsmobilepay/sdk";

const env = process.env;
const scenario = process.argv[2] || "flow";
const prefix = process.argv[3] || `sdk-${Date.now()}`;
const currency = env.VIPPS_CURRENCY || "NOK";
const phoneNumber = env.VIPPS_PHONE || "4791234567";

for (const name of ["VIPPS_CLIENT_ID", "VIPPS_CLIENT_SECRET", "VIPPS_SUBSCRIPTION_KEY", "VIPPS_MSN"]) {
  if (!env[name]) {
    console.error(`driver.mjs: ${name} is not set`);
    process.exit(2);
  }
}

const client = Client({
  merchantSerialNumber: env.VIPPS_MSN,
  subscriptionKey: env.VIPPS_SUBSCRIPTION_KEY,
  useTestMode: env.VIPPS_TEST_MODE !== "false",
  retryRequests: false,
  systemName: env.VIPPS_SYSTEM_NAME,  // unset by default: the SDK then sends empty Vipps-System-* headers
  systemVersion: env.VIPPS_SYSTEM_VERSION,
  pluginName: env.VIPPS_PLUGIN_NAME,
  pluginVersion: env.VIPPS_PLUGIN_VERSION,
});

function errorJson(error) {
  // The SDK returns the parsed error body for 4xx, but an Error for 403, 5xx and its own checks.
  if (error instanceof Error) return { message: error.message };
  return error;
}

/** Runs one SDK call and prints its line; returns the SDK's result. */
async function step(name, call) {
  let result;
  try {
    result = await call();
  } catch (thrown) {
    result = { ok: false, error: thrown instanceof Error ? thrown : new Error(String(thrown)) };
    console.log(JSON.stringify({ step: name, ok: false, thrown: true, error: errorJson(result.error) }));
    return result;
  }
  const line = result.ok ? { step: name, ok: true, data: result.data } : { step: name, ok: false, error: errorJson(result.error) };
  console.log(JSON.stringify(line));
  return result;
}

function amount(value) {
  return { currency, value };
}

function createBody(reference, value) {
  return {
    amount: amount(value),
    paymentMethod: { type: "WALLET" },
    customer: { phoneNumber },
    reference,
    returnUrl: `https://example.com/return?reference=${reference}`,
    userFlow: "WEB_REDIRECT",
    paymentDescription: `SDK proof ${reference}`,
  };
}

async function getToken() {
  const result = await step("token", () => client.auth.getToken(env.VIPPS_CLIENT_ID, env.VIPPS_CLIENT_SECRET));
  if (!result.ok) process.exit(1);
  return result.data.access_token;
}

async function flow() {
  const token = await getToken();
  const ref = `${prefix}-main`;
  await step("create", () => client.payment.create(token, createBody(ref, 10000)));
  await step("info", () => client.payment.info(token, ref));
  await step("history", () => client.payment.history(token, ref));
  await step("forceApprove", () => client.payment.forceApprove(token, ref, { customer: { phoneNumber } }));
  await step("info.authorized", () => client.payment.info(token, ref));
  await step("capture", () => client.payment.capture(token, ref, { modificationAmount: amount(6000) }));
  await step("refund", () => client.payment.refund(token, ref, { modificationAmount: amount(2500) }));
  await step("cancel", () => client.payment.cancel(token, ref));
  await step("history.final", () => client.payment.history(token, ref));

  // One payment captured and refunded in full, so the run shows both halves of "full and partial".
  const full = `${prefix}-full`;
  await step("create.full", () => client.payment.create(token, createBody(full, 3000)));
  await step("forceApprove.full", () => client.payment.forceApprove(token, full, { customer: { phoneNumber } }));
  await step("capture.full", () => client.payment.capture(token, full, { modificationAmount: amount(3000) }));
  await step("refund.full", () => client.payment.refund(token, full, { modificationAmount: amount(3000) }));

  const other = `${prefix}-errors`;
  await step("create.errors", () => client.payment.create(token, createBody(other, 5000)));
  await step("error.captureBeforeApprove", () =>
    client.payment.capture(token, other, { modificationAmount: amount(1000) }));
  await step("forceApprove.errors", () => client.payment.forceApprove(token, other, { customer: { phoneNumber } }));
  await step("error.overCapture", () => client.payment.capture(token, other, { modificationAmount: amount(5001) }));
  await step("error.unknownReference", () => client.payment.info(token, `${prefix}-does-not-exist`));
}

async function production() {
  const token = await getToken();
  const ref = `${prefix}-prod`;
  await step("create", () => client.payment.create(token, createBody(ref, 10000)));
  await step("info", () => client.payment.info(token, ref));
  // The SDK refuses this itself outside test mode; recorded to show it never reaches the API.
  await step("error.forceApproveInProduction", () =>
    client.payment.forceApprove(token, ref, { customer: { phoneNumber } }));
}

async function settle() {
  // After the user approved `${prefix}-prod` (the landing page, or the control plane in tests).
  const token = await getToken();
  const ref = `${prefix}-prod`;
  await step("capture", () => client.payment.capture(token, ref, { modificationAmount: amount(10000) }));
  await step("refund", () => client.payment.refund(token, ref, { modificationAmount: amount(1000) }));
  await step("info", () => client.payment.info(token, ref));
}

async function webhooks() {
  const token = await getToken();
  const url = env.VIPPS_WEBHOOK_URL || "https://example.com/vipps/webhooks";
  const events = ["epayments.payment.captured.v1", "epayments.payment.authorized.v1"];
  const registered = await step("webhook.register", () => client.webhook.register(token, { url, events }));
  await step("webhook.list", () => client.webhook.list(token));
  if (registered.ok) {
    await step("webhook.delete", () => client.webhook.delete(token, registered.data.id));
  }
  await step("webhook.list.afterDelete", () => client.webhook.list(token));
}

function dueIn(days) {
  return new Date(Date.now() + days * 86400000).toISOString().slice(0, 10);
}

async function recurring() {
  const token = await getToken();
  let agreementId = env.VIPPS_AGREEMENT_ID;
  let initialId = env.VIPPS_CHARGE_ID;
  const body = {
    pricing: { type: "LEGACY", amount: 49900, currency },
    interval: { unit: "MONTH", count: 1 },
    merchantRedirectUrl: "https://example.com/redirect",
    merchantAgreementUrl: "https://example.com/agreement",
    productName: "SDK proof",
    initialCharge: { amount: 49900, description: "First month", transactionType: "RESERVE_CAPTURE" },
  };
  if (!agreementId) {
    const drafted = await step("agreement.create", () => client.recurring.agreement.create(token, body));
    if (!drafted.ok) process.exit(1);
    agreementId = drafted.data.agreementId;
    initialId = drafted.data.chargeId;
    await step("agreement.forceAccept", () =>
      client.recurring.agreement.forceAccept(token, agreementId, { phoneNumber: "4712345678" }));
  }
  await step("agreement.list", () => client.recurring.agreement.list(token, "ACTIVE", undefined, 1, 10));
  await step("agreement.info", () => client.recurring.agreement.info(token, agreementId));
  const charge = { amount: 49900, description: "Next month", due: dueIn(10), retryDays: 2,
                   transactionType: "DIRECT_CAPTURE" };
  const created = await step("charge.create", () => client.recurring.charge.create(token, agreementId, charge));
  const chargeId = created.ok ? created.data.chargeId : "none";
  await step("charge.createMultiple", () => client.recurring.charge.createMultiple(token, [
    { ...charge, agreementId, due: dueIn(40), orderId: `${prefix}-batch-1` },
  ]));
  await step("charge.info", () => client.recurring.charge.info(token, agreementId, chargeId));
  await step("charge.infoById", () => client.recurring.charge.infoById(token, chargeId));
  await step("charge.list", () => client.recurring.charge.list(token, agreementId));
  await step("charge.capture", () => client.recurring.charge.capture(token, agreementId, initialId, { amount: 49900 }));
  await step("charge.refund", () =>
    client.recurring.charge.refund(token, agreementId, initialId, { amount: 10000, description: "Partial refund" }));
  await step("charge.cancel", () => client.recurring.charge.cancel(token, agreementId, chargeId));
  await step("charge.info.final", () => client.recurring.charge.info(token, agreementId, initialId));
  await step("agreement.update", () => client.recurring.agreement.update(token, agreementId, { status: "STOPPED" }));
  await step("agreement.info.final", () => client.recurring.agreement.info(token, agreementId));
}

async function checkout() {
  // No token: Checkout takes the keys themselves (the SDK sends them as client_id / client_secret headers).
  const body = () => ({
    type: "PAYMENT",
    merchantInfo: { callbackUrl: "https://example.com/cb", returnUrl: "https://example.com/r",
                    callbackAuthorizationToken: "cbtok" },
    transaction: { amount: amount(1000), paymentDescription: `SDK checkout ${prefix}` },
  });
  const first = body();
  const created = await step("checkout.create", () =>
    client.checkout.create(env.VIPPS_CLIENT_ID, env.VIPPS_CLIENT_SECRET, first));
  const reference = first.transaction.reference;  // filled in by the SDK
  console.log(JSON.stringify({ step: "checkout.reference", ok: true, data: reference }));
  if (!created.ok) return;
  await step("checkout.info", () => client.checkout.info(env.VIPPS_CLIENT_ID, env.VIPPS_CLIENT_SECRET, reference));
  const again = body();
  again.transaction.reference = reference;
  await step("checkout.error.duplicate", () =>
    client.checkout.create(env.VIPPS_CLIENT_ID, env.VIPPS_CLIENT_SECRET, again));
  await step("checkout.error.unknown", () =>
    client.checkout.info(env.VIPPS_CLIENT_ID, env.VIPPS_CLIENT_SECRET, `${prefix}-does-not-exist`));
}

const scenarios = { flow, production, settle, webhooks, recurring, checkout };
if (!scenarios[scenario]) {
  console.error(`driver.mjs: unknown scenario ${scenario}; use one of ${Object.keys(scenarios).join(", ")}`);
  process.exit(2);
}
await scenarios[scenario]();
