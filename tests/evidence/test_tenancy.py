"""Tenancy across APIs: an id of one sales unit (or partner, or merchant) is never reachable with anybody else's keys.

One table, ID_KINDS: every kind of id an API hands out, how its owner makes one (sales unit A with its merchant keys in
the test environment; partner A's keys with A's Merchant-Serial-Number in production), and every route that takes it
(`Reach`, named by its policy route, so the path and method come from sandbox/gateway/policy.py ROUTES). The test runs
every (id kind x reach x attacker) and asserts, for each:

- the refusal has the status the real API gives (vipps-apis.md and next-apis.md: the API's 404 for an id that is not
  the caller's, or the 403 of an MSN that is not connected to the partner), in the API's own error format
  (tests/support/api_formats.py);
- for the caller it is the very answer an id that does not exist gets (status, headers, body), so the refusal does
  not even tell that the id exists;
- nothing of the object's data (its strings as the owner reads them, the marker put into it) is in the refusal (its
  body and headers; the sandbox's own Vipps-Sandbox-Reason explains a denial to the developer and may name the
  owner, as designed for opaque answers);
- the object is unchanged afterwards (read again as its owner).

A few writes act in the caller's own namespace by design (Order Management "does not check that the order exists",
a callback QR's PUT creates or updates the caller's own): there the attacker may succeed, on its own object, and the
owner's object must still be unchanged. A MobilePay beacon is one printed code: mapping it again is the spec's 409
for everybody else (the only answer that tells an id is taken, by design). `test_every_api_with_ids_is_covered` fails
when an API route with an id path parameter is in neither the table nor EXEMPT, so a new API with ids must be added.

Two more tests use the same table: another tenant's listings (LISTINGS) never show the owner's id, and the ids a
client chooses (references, QR ids, image ids, with the same Idempotency-Key) are free for another sales unit.

One sandbox serves the whole module (each case makes its own objects), so the file runs in a few seconds.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import re
import struct
import uuid
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import pytest_asyncio
from api_formats import error_format_problem
from opaque_support import caller_view

from sandbox.apis.report.ledger import ledger_id_for
from sandbox.core.model import MIAMI_KEY_TYPES
from sandbox.core.settings import Settings
from sandbox.gateway.policy import ROUTES, Api
from sandbox.testing import Reply, SandboxClient, started

# -- who is who ---------------------------------------------------------------------------------------------------
#: Sales unit A (Recurring allowed, of partner "premium"), and B: another sales unit of the same merchant and partner.
A_UNIT, B_UNIT = "newborn", "restricted-no"
PARTNER_A, PARTNER_B = "premium", "dual"  # both approved to act on behalf of merchants
B_PARTNER_UNIT = "dual-shop-1"  # partner B's own sales unit (Recurring not allowed for it: see NOT_RECURRING)
UNCONNECTED = "independent-1"  # connected to no partner
B_MERCHANT = "independent"  # a merchant with merchant-level keys that is not A's merchant
LOGIN_CALLBACK = "http://127.0.0.1:53682/callback"
_n = itertools.count(1)


def fresh(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}-{next(_n)}"


@dataclass(frozen=True)
class Who:
    """A caller: a key type, the role of its owner (unit, partner or merchant), its environment and the MSN it sends."""

    key_type: str
    owner_role: str
    env: str
    msn_role: str | None = None


OWNERS = {"test": Who("merchant", A_UNIT, "test", A_UNIT),
          "production": Who("partner", PARTNER_A, "production", A_UNIT)}

#: Attackers that the policy refuses before any id is looked up (the MSN is not connected to the keys' partner).
POLICY_ATTACKERS = {"partner-B-with-A-msn", "partner-A-unconnected-msn"}


def attacker(name: str, env: str) -> Who:
    return {
        "merchant-B": Who("merchant", B_UNIT, env, B_UNIT),
        "partner-B-own-msn": Who("partner", PARTNER_B, "production", B_PARTNER_UNIT),
        "partner-B-with-A-msn": Who("partner", PARTNER_B, "production", A_UNIT),
        "partner-A-unconnected-msn": Who("partner", PARTNER_A, "production", UNCONNECTED),
        # kind-specific attackers (Report, Donations, Management)
        "partner-B": Who("partner", PARTNER_B, "production"),
        "management-B": Who("management", "basic", "production"),
        "accounting-no-consent": Who("accounting", PARTNER_B, "production"),  # dual consented for dual-shop only
        "merchant-level-B": Who("merchant-level", B_MERCHANT, "production"),
    }[name]


#: A itself, from the other environment: keys never work across, and the two environments' objects are apart.
OTHER_ENV = "merchant-A-other-env"
ACTING_ATTACKERS = ("merchant-B", "partner-B-own-msn", "partner-B-with-A-msn", "partner-A-unconnected-msn", OTHER_ENV)


class Ctx:
    """The module's sandbox, with each caller's credentials made once."""

    def __init__(self, sandbox: SandboxClient) -> None:
        self.sandbox = sandbox
        self.tokens: dict[tuple[str, str], str] = {}
        by_role = {u.role: u.phone_number for u in sandbox.runtime.world.users.values()}
        self.phone = by_role["no-user"]
        #: Who shares a profile in each environment: a sub is the same for a sales unit and a user in both (uuid5 of
        #: MSN and phone number), so one user sharing in both would have A's test keys find the test consent.
        self.sharing = {"test": by_role["no-user"], "production": by_role["no-several-addresses"]}

    def msn(self, role: str | None) -> str | None:
        return None if role is None else self.sandbox.msn_role(role)

    def keyset(self, who: Who) -> dict:
        s = self.sandbox
        if who.key_type == "merchant":
            return s.key("merchant", who.env, msn=s.msn_role(who.owner_role))
        if who.key_type in ("partner", "management", "accounting"):
            return s.key(who.key_type, who.env, owner=s.partner_role(who.owner_role))
        merchant = next(m.key for m in s.runtime.world.merchants.values() if m.role == who.owner_role)
        return s.keys("merchant-level", who.env, owner=merchant)[0]

    async def headers(self, who: Who, api: Api) -> dict:
        keys = self.keyset(who)
        msn = self.msn(who.msn_role)
        if api is Api.CHECKOUT:  # the keys themselves as headers, as the official SDK sends them (an empty bearer)
            out = {"client_id": keys["client_id"], "client_secret": keys["client_secret"], "Authorization": "Bearer "}
        elif api is Api.LOGIN and who.key_type == "merchant":  # OAuth client credentials (client_secret_basic)
            raw = f"{keys['client_id']}:{keys['client_secret']}".encode()
            return {"Authorization": "Basic " + base64.b64encode(raw).decode()}
        else:
            cache = (keys["client_id"], who.env)
            if cache not in self.tokens:
                self.tokens[cache] = await self.sandbox.token(keys, who.env)
            out = {"Authorization": f"Bearer {self.tokens[cache]}"}
        if keys.get("subscription_key_primary") and keys["type"] not in MIAMI_KEY_TYPES:
            out["Ocp-Apim-Subscription-Key"] = keys["subscription_key_primary"]
        if msn is not None:
            out["Merchant-Serial-Number"] = msn
        return out

    async def call(self, who: Who, api: Api, method: str, path: str, body: object = None, form: dict | None = None,
                   headers: dict | None = None) -> Reply:
        sent = await self.headers(who, api)
        sent.update(headers or {})
        if form is not None:
            sent["Content-Type"] = "application/x-www-form-urlencoded"
            return await self.sandbox.request(method, path, who.env, data=urlencode(form), headers=sent)
        return await self.sandbox.request(method, path, who.env, json_body=body, headers=sent)

    async def control(self, method: str, path: str, env: str, body: object = None) -> Reply:
        reply = await self.sandbox.request(method, path, env, json_body=body)
        assert reply.status < 300, (path, reply.status, reply.text)
        return reply


def ok(reply: Reply, *statuses: int) -> Reply:
    assert reply.status in (statuses or (200, 201, 202, 204)), (reply.status, reply.text)
    return reply


# -- the id kinds ------------------------------------------------------------------------------------------------
Obj = dict  # what create() returns: "ids" (path parameters), "marker", and whatever state() needs


@dataclass(frozen=True)
class Reach:
    """One way to reach an id: a policy route (its method and path template), with a body and extra headers."""

    route: str
    body: Callable[[Obj], object] | None = None
    headers: dict = field(default_factory=dict)
    query: str = ""  # "?orderId={orderId}": an id in the query string
    form: Callable[[Obj], dict] | None = None  # a form body (Login's token endpoint)
    #: By design the caller acts on its own object of that id (create-or-update, "the order is not checked"): a
    #: foreign caller may succeed there, and the owner's object must still be unchanged.
    own_namespace: bool = False
    #: Only these attackers act in their own namespace there (None: every attacker the policy lets in).
    own_for: frozenset[str] | None = None
    #: Overrides of the expected status, by attacker (what the real API answers there, and why, in a comment).
    expect: dict = field(default_factory=dict)

    def own_namespace_for(self, name: str) -> bool:
        """May this attacker succeed here, on an object of its own with the owner's id?"""
        return self.own_namespace and name not in POLICY_ATTACKERS and (self.own_for is None or name in self.own_for)


@dataclass(frozen=True)
class IdKind:
    name: str
    api: Api
    create: Callable[[Ctx, Who], Awaitable[Obj]]
    state: Callable[[Ctx, Who, Obj, str], Awaitable[object]]  # (ctx, owner, obj, "before" | "after")
    reaches: tuple[Reach, ...]
    attackers: tuple[str, ...] = ACTING_ATTACKERS
    envs: tuple[str, ...] = ("test", "production")
    owners: dict = field(default_factory=dict)  # env -> Who, when the owner is not OWNERS[env]
    not_found: int = 404  # what a caller who may use the API but does not own the id gets
    policy_status: int = 403  # what the policy attackers get (an MSN not connected to the partner)


# ePayment ---------------------------------------------------------------------------------------------------------
EPAY = "/epayment/v1/payments"


def amount(value: int = 1000) -> dict:
    return {"modificationAmount": {"currency": "NOK", "value": value}}


async def epayment_create(ctx: Ctx, owner: Who) -> Obj:
    reference, marker = fresh("ten-pay"), fresh("marker-desc")
    body = {"amount": {"currency": "NOK", "value": 10000}, "paymentMethod": {"type": "WALLET"},
            "reference": reference, "userFlow": "WEB_REDIRECT", "returnUrl": f"https://shop.example.com/{marker}",
            "paymentDescription": marker}
    ok(await ctx.call(owner, Api.EPAYMENT, "POST", EPAY, body, headers={"Idempotency-Key": reference}), 201)
    await ctx.control("POST", f"/_sandbox/payments/{ctx.msn(owner.msn_role)}/{reference}/approve", owner.env)
    return {"ids": {"reference": reference}, "marker": marker}


async def epayment_state(ctx: Ctx, owner: Who, obj: Obj, phase: str) -> object:
    ref = obj["ids"]["reference"]
    payment = ok(await ctx.call(owner, Api.EPAYMENT, "GET", f"{EPAY}/{ref}"), 200).json
    events = ok(await ctx.call(owner, Api.EPAYMENT, "GET", f"{EPAY}/{ref}/events"), 200).json
    assert payment["state"] == "AUTHORIZED"
    return payment, events


EPAYMENT = IdKind("epayment-reference", Api.EPAYMENT, epayment_create, epayment_state, (
    Reach("epayment.get"), Reach("epayment.events"),
    Reach("epayment.capture", lambda o: amount(), {"Idempotency-Key": "ten-capture"}),
    Reach("epayment.refund", lambda o: amount(), {"Idempotency-Key": "ten-refund"}),
    Reach("epayment.cancel", headers={"Idempotency-Key": "ten-cancel"}),
    Reach("epayment.force_approve", lambda o: {}),  # test only (skipped in production: the route is not there)
))

# Recurring -------------------------------------------------------------------------------------------------------
REC = "/recurring/v3"


async def recurring_create(ctx: Ctx, owner: Who) -> Obj:
    marker = fresh("marker-product")
    draft = {"pricing": {"type": "LEGACY", "amount": 49900, "currency": "NOK"},
             "interval": {"unit": "MONTH", "count": 1}, "merchantRedirectUrl": "https://shop.example.com/r",
             "merchantAgreementUrl": f"https://shop.example.com/{marker}", "productName": marker}
    reply = ok(await ctx.call(owner, Api.RECURRING, "POST", f"{REC}/agreements", draft,
                              headers={"Idempotency-Key": fresh("rk")}), 201)
    agreement_id = reply.json["agreementId"]
    await ctx.control("POST", f"/_sandbox/recurring/{ctx.msn(owner.msn_role)}/agreements/{agreement_id}/approve",
                      owner.env)
    due = (datetime.fromtimestamp(ctx.sandbox.runtime.clock.time(), UTC).date() + timedelta(days=5)).isoformat()
    charge = {"amount": 49900, "description": marker[:40], "due": due, "retryDays": 2,
              "transactionType": "DIRECT_CAPTURE"}
    reply = ok(await ctx.call(owner, Api.RECURRING, "POST", f"{REC}/agreements/{agreement_id}/charges", charge,
                              headers={"Idempotency-Key": fresh("rk")}), 201)
    return {"ids": {"agreementId": agreement_id, "chargeId": reply.json["chargeId"]}, "marker": marker, "due": due}


async def recurring_state(ctx: Ctx, owner: Who, obj: Obj, phase: str) -> object:
    a, c = obj["ids"]["agreementId"], obj["ids"]["chargeId"]
    agreement = ok(await ctx.call(owner, Api.RECURRING, "GET", f"{REC}/agreements/{a}"), 200).json
    charges = ok(await ctx.call(owner, Api.RECURRING, "GET", f"{REC}/agreements/{a}/charges"), 200).json
    assert agreement["status"] == "ACTIVE" and [x["id"] for x in charges] == [c]
    return agreement, charges


def recurring_charge(o: Obj) -> dict:
    return {"amount": 100, "description": "attack", "due": "2099-01-01", "retryDays": 0,
            "transactionType": "DIRECT_CAPTURE"}


#: Partner B's own sales unit may not use Recurring at all: the problems page's invalid-sale-unit, a 403, before any id.
NOT_RECURRING = {"partner-B-own-msn": 403}
RECURRING = IdKind("recurring-agreement-and-charge", Api.RECURRING, recurring_create, recurring_state, tuple(
    Reach(route, body, {"Idempotency-Key": "ten-rec"} if body or route.endswith(("cancel", "capture")) else {},
          expect=NOT_RECURRING)
    for route, body in (
        ("recurring.agreements.get", None),
        ("recurring.agreements.update", lambda o: {"status": "STOPPED"}),
        ("recurring.agreements.accept", lambda o: {"phoneNumber": "4712345678"}),  # test only
        ("recurring.charges.list", None),
        ("recurring.charges.create", recurring_charge),
        ("recurring.charges.get", None),
        ("recurring.charges.cancel", None),
        ("recurring.charges.get_by_id", None),
        ("recurring.charges.capture", lambda o: {"amount": 49900, "description": "capture"}),
        ("recurring.charges.refund", lambda o: {"amount": 100, "description": "refund"}),
    )) + (
    # the id in a body: the batch answers 202 at once (its items "passed API level validation") and creates each
    # charge afterwards, for the caller's own agreement of that id only; A's agreement gets no charge
    Reach("recurring.charges.batch", lambda o: [{**recurring_charge(o), "agreementId": o["ids"]["agreementId"],
                                                 "orderId": fresh("ten-batch"), "due": o["due"]}],
          {"Idempotency-Key": "ten-batch"}, own_namespace=True, expect=NOT_RECURRING),
))

# Checkout ---------------------------------------------------------------------------------------------------------
CHK = "/checkout/v3/session"


async def checkout_create(ctx: Ctx, owner: Who) -> Obj:
    reference, marker = fresh("ten-chk"), fresh("marker-chk")
    body = {"type": "PAYMENT", "reference": reference,
            "merchantInfo": {"callbackUrl": "https://shop.example.com/cb", "returnUrl": f"https://shop.example.com/{marker}",
                             "callbackAuthorizationToken": fresh("cbtoken")},
            "transaction": {"amount": {"currency": "NOK", "value": 10000}, "paymentDescription": marker}}
    ok(await ctx.call(owner, Api.CHECKOUT, "POST", CHK, body), 200)
    return {"ids": {"reference": reference}, "marker": marker}


async def checkout_state(ctx: Ctx, owner: Who, obj: Obj, phase: str) -> object:
    session = ok(await ctx.call(owner, Api.CHECKOUT, "GET", f"{CHK}/{obj['ids']['reference']}"), 200).json
    assert session["sessionState"] == "SessionCreated", session
    return session


CHECKOUT = IdKind("checkout-session", Api.CHECKOUT, checkout_create, checkout_state, (
    Reach("checkout.session.get"),
    Reach("checkout.session.update",
          lambda o: {"transaction": {"amount": {"currency": "NOK", "value": 1}, "paymentDescription": "attack"}}),
    Reach("checkout.session.expire"),
))

# QR ---------------------------------------------------------------------------------------------------------------
PNG = {"Accept": "image/png"}


async def redirect_create(ctx: Ctx, owner: Who) -> Obj:
    qr_id, marker = fresh("ten_qr").replace("-", "_"), fresh("marker-qr")
    ok(await ctx.call(owner, Api.QR, "POST", "/qr/v1/merchant-redirect",
                      {"id": qr_id, "redirectUrl": f"https://example.com/{marker}"}, headers=PNG), 200)
    return {"ids": {"id": qr_id}, "marker": marker}


async def redirect_state(ctx: Ctx, owner: Who, obj: Obj, phase: str) -> object:
    got = ok(await ctx.call(owner, Api.QR, "GET", f"/qr/v1/merchant-redirect/{obj['ids']['id']}", headers=PNG), 200)
    assert obj["marker"] in got.json["redirectUrl"]
    return got.json


QR_REDIRECT = IdKind("qr-merchant-redirect", Api.QR, redirect_create, redirect_state, (
    Reach("qr.redirect.get", headers=PNG),
    Reach("qr.redirect.update", lambda o: {"redirectUrl": "https://example.com/attacker"}, PNG),
    Reach("qr.redirect.delete", headers=PNG),
))


async def callback_create(ctx: Ctx, owner: Who) -> Obj:
    qr_id, marker = fresh("kasse"), fresh("marker-kasse")
    ok(await ctx.call(owner, Api.QR, "PUT", f"/qr/v1/merchant-callback/{qr_id}", {"locationDescription": marker}), 200)
    return {"ids": {"merchantQrId": qr_id, "beaconId": qr_id}, "marker": marker}


async def callback_state(ctx: Ctx, owner: Who, obj: Obj, phase: str) -> object:
    got = ok(await ctx.call(owner, Api.QR, "GET", f"/qr/v1/merchant-callback/{obj['ids']['merchantQrId']}"), 200)
    assert got.json["locationDescription"] == obj["marker"]
    return got.json


QR_CALLBACK = IdKind("qr-merchant-callback", Api.QR, callback_create, callback_state, (
    Reach("qr.callback.get"),
    # PUT is create-or-update of the caller's own callback QR (ids are per sales unit): B gets its own code
    Reach("qr.callback.put", lambda o: {"locationDescription": "attacker"}, own_namespace=True),
    Reach("qr.callback.delete"),
))


async def beacon_create(ctx: Ctx, owner: Who) -> Obj:
    beacon, marker = str(uuid.uuid4()), fresh("marker-beacon")
    ok(await ctx.call(owner, Api.QR, "PUT", f"/qr/v1/merchant-callback/mobilepay/{beacon}",
                      {"locationDescription": marker}), 200, 204)
    return {"ids": {"merchantQrId": beacon, "beaconId": beacon}, "marker": marker}


#: A MobilePay beacon is one printed code: mapped to A, it is the spec's 409 Conflict for anybody else (the real API
#: tells that it is taken; nothing of A's is in the body).
TAKEN = {"merchant-B": 409, "partner-B-own-msn": 409}
#: The other environment is another world: there the beacon is free, and A maps it for itself.
OTHER_WORLD = frozenset({OTHER_ENV})
QR_BEACON = IdKind("qr-mobilepay-beacon", Api.QR, beacon_create, callback_state, (
    Reach("qr.callback.mobilepay", lambda o: {"locationDescription": "attacker"}, expect=TAKEN, own_namespace=True,
          own_for=OTHER_WORLD),
    Reach("qr.callback.put", lambda o: {"locationDescription": "attacker"}, expect=TAKEN, own_namespace=True,
          own_for=OTHER_WORLD),
    Reach("qr.callback.get"),
    Reach("qr.callback.delete"),
))

# Order Management ------------------------------------------------------------------------------------------------
OM = "/order-management"


def receipt(marker: str) -> dict:
    return {"orderLines": [{"name": marker, "id": "line_1", "totalAmount": 1000, "totalAmountExcludingTax": 800,
                            "totalTaxAmount": 200, "taxPercentage": 25}],
            "bottomLine": {"currency": "NOK", "posId": "pos_1", "receiptNumber": marker[-12:]}}


async def order_create(ctx: Ctx, owner: Who) -> Obj:
    order_id, marker = fresh("ten-order"), fresh("marker-order")
    ok(await ctx.call(owner, Api.ORDER_MANAGEMENT, "POST", f"{OM}/v2/ecom/receipts/{order_id}", receipt(marker)), 201)
    ok(await ctx.call(owner, Api.ORDER_MANAGEMENT, "PUT", f"{OM}/v2/ecom/categories/{order_id}",
                      {"category": "RECEIPT", "orderDetailsUrl": f"https://example.com/{marker}"}), 200)
    return {"ids": {"paymentType": "ecom", "orderId": order_id, "transactionId": order_id}, "marker": marker}


async def order_state(ctx: Ctx, owner: Who, obj: Obj, phase: str) -> object:
    got = ok(await ctx.call(owner, Api.ORDER_MANAGEMENT, "GET", f"{OM}/v2/ecom/{obj['ids']['orderId']}"), 200).json
    assert got["receipt"]["orderLines"][0]["name"] == obj["marker"]
    return got


CATEGORY = {"category": "GENERAL", "orderDetailsUrl": "https://example.com/attacker"}
V1_CATEGORY = {"category": 1, "orderDetailsUrl": "https://example.com/attacker"}
ORDER = IdKind("ordermanagement-order", Api.ORDER_MANAGEMENT, order_create, order_state, (
    Reach("ordermanagement.v2.order"),
    Reach("ordermanagement.v1.order.get"),
    Reach("ordermanagement.v1.receipt.get"),
    # writes: the API "does not check that the order exists", so a foreign caller writes its own order of that id
    Reach("ordermanagement.v2.category", lambda o: CATEGORY, own_namespace=True),
    Reach("ordermanagement.v2.receipt", lambda o: receipt("attacker-line"), own_namespace=True),
    Reach("ordermanagement.v1.order.put", lambda o: CATEGORY, own_namespace=True),
    Reach("ordermanagement.v1.receipt.post", lambda o: receipt("attacker-line"), own_namespace=True),
    # the v3 query by orderId answers the caller's own categories of that order: none
    Reach("ordermanagement.v3.categories.query", query="?orderId={orderId}", own_namespace=True),
))


async def category_create(ctx: Ctx, owner: Who) -> Obj:
    order_id, marker = fresh("ten-v3"), fresh("marker-v3")
    reply = ok(await ctx.call(owner, Api.ORDER_MANAGEMENT, "POST", f"{OM}/v3/categories",
                              {"orderId": order_id, "paymentType": "ECOM", "type": "TICKET",
                               "url": f"https://example.com/{marker}"}), 201)
    return {"ids": {"categoryId": reply.json["categoryId"]}, "marker": marker}


async def category_state(ctx: Ctx, owner: Who, obj: Obj, phase: str) -> object:
    path = f"{OM}/v3/categories/{obj['ids']['categoryId']}"
    return ok(await ctx.call(owner, Api.ORDER_MANAGEMENT, "GET", path), 200).json


CATEGORY_V3 = IdKind("ordermanagement-v3-category", Api.ORDER_MANAGEMENT, category_create, category_state, (
    Reach("ordermanagement.v3.category.get"), Reach("ordermanagement.v3.category.delete"),
))


def tiny_png(height: int = 170) -> str:

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    raw = b"".join(b"\x00\xff" for _ in range(height))
    return base64.b64encode(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, height, 8, 0, 0, 0, 0))
                            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")).decode()


async def image_create(ctx: Ctx, owner: Who) -> Obj:
    image_id, src = fresh("img"), tiny_png()
    ok(await ctx.call(owner, Api.ORDER_MANAGEMENT, "POST", f"{OM}/v1/images",
                      {"imageId": image_id, "src": src, "type": "base64"}), 200)
    return {"ids": {"imageId": image_id, "paymentType": "ecom", "orderId": fresh("img-order")}, "marker": src}


async def image_state(ctx: Ctx, owner: Who, obj: Obj, phase: str) -> object:
    """The owner can still use the image (on an order of its own)."""
    ok(await ctx.call(owner, Api.ORDER_MANAGEMENT, "PUT", f"{OM}/v2/ecom/categories/{fresh('own')}",
                      {**CATEGORY, "imageId": obj["ids"]["imageId"]}), 200)
    return "usable"


#: An image id in a body: v2's category says 404 for an image the caller never uploaded, v3's add says 400.
IMAGE = IdKind("ordermanagement-image", Api.ORDER_MANAGEMENT, image_create, image_state, (
    Reach("ordermanagement.v2.category", lambda o: {**CATEGORY, "imageId": o["ids"]["imageId"]}),
    Reach("ordermanagement.v3.categories.add",
          lambda o: {"orderId": o["ids"]["orderId"], "paymentType": "ECOM", "type": "TICKET",
                     "url": "https://example.com/x", "imageId": o["ids"]["imageId"]},
          expect={"merchant-B": 400, "partner-B-own-msn": 400, OTHER_ENV: 400}),
))

# Webhooks ---------------------------------------------------------------------------------------------------------


async def webhook_create(ctx: Ctx, owner: Who) -> Obj:
    name = fresh("ten-hook")
    url = f"{ctx.sandbox.url(owner.env)}/_sandbox/inbox/{name}"
    reply = ok(await ctx.call(owner, Api.WEBHOOKS, "POST", "/webhooks/v1/webhooks",
                              {"url": url, "events": ["epayments.payment.captured.v1"]}), 201)
    return {"ids": {"id": reply.json["id"]}, "marker": reply.json["secret"], "url": url}


async def webhook_state(ctx: Ctx, owner: Who, obj: Obj, phase: str) -> object:
    listed = ok(await ctx.call(owner, Api.WEBHOOKS, "GET", "/webhooks/v1/webhooks"), 200).json
    [mine] = [hook for hook in listed["webhooks"] if hook["id"] == obj["ids"]["id"]]
    return mine


#: Merchant-level keys reach Webhooks too (donations.* events, reference 1b): another merchant's never see A's.
WEBHOOK = IdKind("webhook", Api.WEBHOOKS, webhook_create, webhook_state, (Reach("webhooks.delete"),),
                 attackers=(*ACTING_ATTACKERS, "merchant-level-B"))

# Userinfo ---------------------------------------------------------------------------------------------------------


async def sub_create(ctx: Ctx, owner: Who) -> Obj:
    reference = fresh("ten-sub")
    body = {"amount": {"currency": "NOK", "value": 10000}, "paymentMethod": {"type": "WALLET"},
            "reference": reference, "userFlow": "WEB_REDIRECT", "returnUrl": "https://shop.example.com/r",
            "profile": {"scope": "name phoneNumber email"}}
    ok(await ctx.call(owner, Api.EPAYMENT, "POST", EPAY, body, headers={"Idempotency-Key": reference}), 201)
    await ctx.control("POST", f"/_sandbox/payments/{ctx.msn(owner.msn_role)}/{reference}/approve", owner.env,
                      {"phoneNumber": ctx.sharing[owner.env]})
    payment = ok(await ctx.call(owner, Api.EPAYMENT, "GET", f"{EPAY}/{reference}"), 200).json
    return {"ids": {"sub": payment["profile"]["sub"]}, "marker": ctx.sharing[owner.env]}


async def sub_state(ctx: Ctx, owner: Who, obj: Obj, phase: str) -> object:
    got = ok(await ctx.call(owner, Api.USERINFO, "GET", f"/vipps-userinfo-api/userinfo/{obj['ids']['sub']}"), 200)
    assert got.json["phone_number"] == ctx.sharing[owner.env]
    return got.json


USERINFO = IdKind("userinfo-sub", Api.USERINFO, sub_create, sub_state, (Reach("userinfo.get"),))

# Login ------------------------------------------------------------------------------------------------------------
LOGIN = "/access-management-1.0/access/oauth2/"


async def code_create(ctx: Ctx, owner: Who) -> Obj:
    """A code issued to sales unit A's Login client (its merchant keys' client_id)."""
    client = ctx.sandbox.key("merchant", owner.env, msn=ctx.msn(A_UNIT))
    query = urlencode({"response_type": "code", "client_id": client["client_id"], "scope": "openid name phoneNumber",
                       "state": fresh("state"), "redirect_uri": LOGIN_CALLBACK})
    async with ctx.sandbox.session.get(ctx.sandbox.url(owner.env) + LOGIN + "auth?" + query,
                                       allow_redirects=False) as response:
        assert response.status == 302, response.status
        login_id = parse_qs(urlsplit(response.headers["Location"]).query)["login"][0]
    reply = await ctx.control("POST", "/_sandbox/login/approve", owner.env,
                              {"loginId": login_id, "phoneNumber": ctx.phone})
    code = parse_qs(urlsplit(reply.json["location"]).query)["code"][0]
    return {"ids": {"code": code}, "marker": ctx.phone}  # the user who logged in: never told to anybody else


async def code_state(ctx: Ctx, owner: Who, obj: Obj, phase: str) -> object:
    """Before: issued (redeeming it would use it up). After: its own client still redeems it, once."""
    if phase == "before":
        return "issued"
    reply = await ctx.call(owner, Api.LOGIN, "POST", LOGIN + "token", form=code_form(obj))
    assert reply.status == 200, reply.text
    assert reply.json["id_token"] and reply.json["access_token"]
    return "issued"


def code_form(obj: Obj) -> dict:
    return {"grant_type": "authorization_code", "code": obj["ids"]["code"], "redirect_uri": LOGIN_CALLBACK}


LOGIN_OWNERS = {"test": Who("merchant", A_UNIT, "test"), "production": OWNERS["production"]}
#: Another client redeeming the code: OAuth's invalid_grant, 400 (RFC 6749 5.2: "issued to another client").
#: A partner whose MSN is not connected: invalid_client, 401 (sandbox/apis/login/clients.py).
LOGIN_CODE = IdKind("login-code", Api.LOGIN, code_create, code_state, (Reach("login.token", form=code_form),),
                    owners=LOGIN_OWNERS, not_found=400, policy_status=401,
                    attackers=("login-client-B", "partner-B-own-msn", "partner-B-with-A-msn",
                               "partner-A-unconnected-msn", OTHER_ENV))

async def ciba_create(ctx: Ctx, owner: Who) -> Obj:
    """A CIBA login started by sales unit A's client (or partner A for it), approved on the user's phone."""
    form = {"login_hint": f"urn:msisdn:{ctx.phone}", "scope": "openid name phoneNumber"}
    reply = ok(await ctx.call(owner, Api.LOGIN, "POST", "/vipps-login-ciba/api/backchannel/authentication",
                              form=form), 200)
    auth_req_id = reply.json["auth_req_id"]
    await ctx.control("POST", "/_sandbox/login/ciba/approve", owner.env, {"auth_req_id": auth_req_id})
    return {"ids": {"auth_req_id": auth_req_id}, "marker": ctx.phone}


def ciba_form(obj: Obj) -> dict:
    return {"grant_type": "urn:openid:params:grant-type:ciba", "auth_req_id": obj["ids"]["auth_req_id"]}


async def ciba_state(ctx: Ctx, owner: Who, obj: Obj, phase: str) -> object:
    """Before: approved (polling would use it up). After: its own client still gets the tokens, once (the module's
    sandbox polls at interval 0, so nobody's poll makes the owner's a slow_down)."""
    if phase == "before":
        return "approved"
    reply = await ctx.call(owner, Api.LOGIN, "POST", LOGIN + "token", form=ciba_form(obj))
    assert reply.status == 200, reply.text
    return "approved"


LOGIN_CIBA = IdKind("login-ciba-auth-req-id", Api.LOGIN, ciba_create, ciba_state,
                    (Reach("login.token", form=ciba_form),), owners=LOGIN_OWNERS, not_found=400, policy_status=401,
                    attackers=LOGIN_CODE.attackers)


# Donations (production only; merchant-level keys belong to a merchant) ------------------------------------------


async def donation_create(ctx: Ctx, owner: Who) -> Obj:
    marker = fresh("marker-don")
    reply = await ctx.control("POST", "/_sandbox/donations/agreements", "production",
                              {"msn": ctx.msn(A_UNIT), "amount": 12300, "withdrawalDay": 7,
                               "externalReference": marker})
    agreement_id = reply.json.get("id") or reply.json.get("agreementId")
    # and a one-off donation to A with the marker, for the payments report (a listing)
    await ctx.control("POST", "/_sandbox/donations/payments", "production",
                      {"msn": ctx.msn(A_UNIT), "externalReference": marker})
    return {"ids": {"agreementId": agreement_id}, "marker": marker}


async def donation_state(ctx: Ctx, owner: Who, obj: Obj, phase: str) -> object:
    got = ok(await ctx.call(owner, Api.DONATIONS, "GET", f"/donations/v1/agreements/{obj['ids']['agreementId']}"), 200)
    assert got.json["amount"]["value"] == 12300, got.json
    return got.json


DONATION_OWNERS = {"production": Who("merchant-level", "premium-shop", "production"),
                   "production-partner": OWNERS["production"]}
DONATION = IdKind("donations-agreement", Api.DONATIONS, donation_create, donation_state, (
    Reach("donations.agreements.get"), Reach("donations.agreements.stop"),
), envs=("production", "production-partner"), owners=DONATION_OWNERS,
    attackers=("merchant-level-B", "partner-B-own-msn", "partner-B-with-A-msn", "partner-A-unconnected-msn"))

# Report (production only; ledgers are read by the unit's merchant keys, or by accounting keys with consent) ------


async def ledger_create(ctx: Ctx, owner: Who) -> Obj:
    msn = ctx.msn(A_UNIT)
    return {"ids": {"ledgerId": ledger_id_for(msn), "topic": "funds", "ledgerDate": "2026-01-05"}, "marker": msn}


async def ledger_state(ctx: Ctx, owner: Who, obj: Obj, phase: str) -> object:
    return ok(await ctx.call(owner, Api.REPORT, "GET", f"/report/v2/ledgers/{obj['ids']['ledgerId']}/funds/feed"),
              200).json


REPORT_OWNERS = {"production": Who("merchant", A_UNIT, "production"),
                 "production-accountant": Who("accounting", "accountant", "production")}  # consented by A's merchant
LEDGER = IdKind("report-ledger", Api.REPORT, ledger_create, ledger_state, (
    Reach("report.feed"), Reach("report.dates"),
), envs=("production", "production-accountant"), owners=REPORT_OWNERS,
    attackers=("merchant-B", "accounting-no-consent", "merchant-level-B"))

# Management (production only; product orders belong to a partner, sales units and merchants to their partner) ---
PO = "/management/v1/product-orders"


def org_number(seed: int) -> str:
    for n in itertools.count(seed):
        digits = [9] + [int(d) for d in f"{n:07d}"[-7:]]
        check = 11 - sum(w * d for w, d in zip((3, 2, 7, 6, 5, 4, 3, 2), digits, strict=True)) % 11
        if check != 10:
            return "".join(map(str, digits)) + str(0 if check == 11 else check)
    raise AssertionError


async def product_order_create(ctx: Ctx, owner: Who) -> Obj:
    marker = fresh("Marker Sykler")
    reply = ok(await ctx.call(owner, Api.MANAGEMENT, "POST", PO, product_order_body(marker),
                              headers={"Idempotency-Key": fresh("po")}))
    order_id = reply.json["prefilledOrderId"]
    return {"ids": {"productOrderId": order_id}, "marker": marker}


async def product_order_state(ctx: Ctx, owner: Who, obj: Obj, phase: str) -> object:
    path = f"/management/v2/product-orders/{obj['ids']['productOrderId']}/details"
    return ok(await ctx.call(owner, Api.MANAGEMENT, "GET", path), 200).json


MANAGEMENT_OWNERS = {"production": Who("partner", PARTNER_A, "production")}
#: Merchant keys never have product orders (they belong to partners): 403 partners-only, before any id.
PARTNERS_ONLY = {"merchant-B": 403}
PRODUCT_ORDER = IdKind("management-product-order", Api.MANAGEMENT, product_order_create, product_order_state, (
    Reach("management.product_orders.details", expect=PARTNERS_ONLY),
    Reach("management.product_orders.delete", expect=PARTNERS_ONLY),
), envs=("production",), owners=MANAGEMENT_OWNERS, attackers=("partner-B", "management-B", "merchant-B"))


def product_order_body(marker: str, **extra) -> dict:
    return {"businessIdentifier": {"scheme": "business:NO:ORG", "id": org_number(1000000 + next(_n) * 7)},
            "productType": "PAYMENT_INTEGRATION", "salesUnitName": marker,
            "settlementBankAccount": {"scheme": "BBAN:NO", "id": "86011117947"},
            "productUseCase": "Website", "annualTurnover": 1000000, "hasRecurring": True,
            "website": {"url": "https://fjordsykler.example.no", "termsUrl": "https://fjordsykler.example.no/terms"},
            **extra}


async def price_package_create(ctx: Ctx, owner: Who) -> Obj:
    """Partner A's price packages are the fixture's; its listing is the owner's state."""
    partner = ctx.sandbox.partner_role(PARTNER_A)
    package = ctx.sandbox.runtime.world.price_packages[partner][0]
    return {"ids": {"pricePackageId": package.id}, "marker": package.id}


async def price_package_state(ctx: Ctx, owner: Who, obj: Obj, phase: str) -> object:
    listed = ok(await ctx.call(owner, Api.MANAGEMENT, "GET", "/management/v1/partners/price-packages"), 200).json
    assert obj["ids"]["pricePackageId"] in json.dumps(listed)
    return listed


#: A price package id in a product order's body: "Not one of the partner's price packages" (400) for another partner.
PRICE_PACKAGE = IdKind("management-price-package", Api.MANAGEMENT, price_package_create, price_package_state, (
    Reach("management.product_orders.create",
          lambda o: product_order_body("Other Partner Shop", pricePackageId=o["ids"]["pricePackageId"]),
          {"Idempotency-Key": "ten-po"}),
), envs=("production",), owners=MANAGEMENT_OWNERS, attackers=("partner-B", "management-B"), not_found=400)


async def sales_unit_create(ctx: Ctx, owner: Who) -> Obj:
    unit = ctx.sandbox.runtime.world.sales_units[ctx.msn(A_UNIT)]
    scheme, merchant_id = unit.merchant.split("/", 1)
    return {"ids": {"msn": unit.msn, "scheme": scheme, "id": merchant_id}, "marker": unit.name}


async def sales_unit_state(ctx: Ctx, owner: Who, obj: Obj, phase: str) -> object:
    return ok(await ctx.call(owner, Api.MANAGEMENT, "GET", f"/management/v1/sales-units/{obj['ids']['msn']}"), 200).json


#: Management's 404 means "not active or not yours" (vipps-apis.md 4): B's own merchant keys may not see their sister
#: unit either (merchant keys see only their own sales unit).
SALES_UNIT = IdKind("management-sales-unit-and-merchant", Api.MANAGEMENT, sales_unit_create, sales_unit_state, (
    Reach("management.sales_units.get"),
    # B's merchant is A's: B's merchant keys see their merchant, and in it their own sales unit only (never A's msn)
    Reach("management.merchants.get", own_namespace=True, own_for=frozenset({"merchant-B"})),
    Reach("management.merchants.sales_units", own_namespace=True, own_for=frozenset({"merchant-B"})),
), envs=("production",), owners=MANAGEMENT_OWNERS, attackers=("partner-B", "management-B", "merchant-B"))

ID_KINDS = (EPAYMENT, RECURRING, CHECKOUT, QR_REDIRECT, QR_CALLBACK, QR_BEACON, ORDER, CATEGORY_V3, IMAGE, WEBHOOK,
            USERINFO, LOGIN_CODE, LOGIN_CIBA, DONATION, LEDGER, PRODUCT_ORDER, PRICE_PACKAGE, SALES_UNIT)

#: API routes with an id path parameter that the table leaves out, and why (none today).
EXEMPT: dict[str, str] = {}
#: GET routes without an id (listings, by what they return) that LISTINGS leaves out, and why.
LISTING_EXEMPT = {
    "login.discovery": "the same public document for everybody",
    "login.jwks": "the same public keys for everybody",
    "login.auth": "the user's browser, no credentials: it shows the client's own login page",
    "login.userinfo": "the user's own access token from the login, nothing a tenant lists",
    "login.userinfo_no_slash": "the user's own access token from the login, nothing a tenant lists",
}


def attacker_who(name: str, owner_env: str) -> Who:
    env = env_of(owner_env)
    if name == OTHER_ENV:  # sales unit A's own merchant keys of the other environment, on that environment's port
        return Who("merchant", A_UNIT, "production" if env == "test" else "test", A_UNIT)
    if name == "login-client-B":  # another sales unit's Login client (its merchant keys), client_secret_basic
        return Who("merchant", B_UNIT, env)
    return attacker(name, env)


def env_of(owner_env: str) -> str:
    """The environment of an owner case ("production-partner" is a production case with another owner)."""
    return "production" if owner_env.startswith("production") else owner_env


def cases():
    for kind in ID_KINDS:
        for env in kind.envs:
            for reach in kind.reaches:
                if env_of(env) not in {str(e) for e in ROUTES[reach.route].allowed_envs}:
                    continue  # a test-only route (force approve, force accept) in production
                for name in kind.attackers:
                    if attacker_who(name, env).env != env_of(env) and name != OTHER_ENV:
                        continue  # partner keys (and every other kind but merchant keys) exist in production only
                    if name == OTHER_ENV and attacker_who(name, env).env not in {
                            str(e) for e in ROUTES[reach.route].allowed_envs}:
                        continue  # force approve and force accept do not exist in production at all
                    yield pytest.param(kind, env, reach, name, id=f"{kind.name}-{env}-{reach.route}-{name}")


def expected(kind: IdKind, reach: Reach, name: str) -> int:
    if name in reach.expect:
        return reach.expect[name]
    if name in POLICY_ATTACKERS:
        return kind.policy_status
    return kind.not_found


# -- the checks ----------------------------------------------------------------------------------------------------


def absent_like(value: str) -> str:
    """A value of the same shape that no object has: in the part after the last separator ("agr_", a UUID's last
    group), hex letters a-f turn to the next one, else the last digit changes."""
    cut = max(value.rfind("_"), value.rfind("-")) + 1
    head, tail = value[:cut], value[cut:]
    turned = "".join("abcdefa"["abcdef".index(c) + 1] if c in "abcdef" else c for c in tail)
    if turned == tail:
        turned = tail[:-1] + str((int(tail[-1]) + 1) % 10) if tail[-1:].isdigit() else tail + "0"
    assert head + turned != value
    return head + turned


#: Fields an API makes fresh for every response (besides opaque_support's instance and traceId): Recurring's contextId.
FRESH_FIELDS = ("contextId",)


def caller_sees(reply: Reply) -> tuple:
    """opaque_support's caller_view, also for non-JSON bodies and with Recurring's contextId blanked; without the
    Content-Length (the body itself is compared, and an absent id may be one character longer)."""
    text = reply.text
    body = json.loads(text) if text.startswith("{") else None
    for name in FRESH_FIELDS:
        if isinstance(body, dict) and isinstance(body.get(name), str):
            text = text.replace(json.dumps(body[name]), '"*"')
    headers = {k: v for k, v in reply.headers.items() if k.lower() != "content-length"}
    if body is not None:
        return caller_view(Reply(reply.status, headers, text))
    return reply.status, tuple(sorted((k.lower(), v) for k, v in headers.items()
                                      if k.lower() != "date" and not k.lower().startswith("vipps-sandbox-"))), text


def strings_of(value: object) -> set[str]:
    if isinstance(value, str):
        return {value}
    if isinstance(value, dict):
        return set().union(*map(strings_of, value.values()), set()) if value else set()
    if isinstance(value, (list, tuple)):
        return set().union(*map(strings_of, value)) if value else set()
    return set()


GENERIC = re.compile(r"^[A-Za-z_ ]+$|^\d{4}-\d\d-\d\d")  # enum values and words, dates: not the object's own


def object_data(state: object, obj: Obj, sent: str) -> set[str]:
    """The object's own strings (as its owner reads them) that the attacker did not send itself."""
    found = {s for s in strings_of(state) | {obj["marker"]} if len(s) >= 8 and not GENERIC.match(s)}
    return {s for s in found if s not in sent}


def fill(template: str, ids: dict) -> str:
    return template.format(**ids)


async def reach_once(ctx: Ctx, who: Who, kind: IdKind, reach: Reach, ids: dict, obj: Obj) -> tuple[Reply, str]:
    route = ROUTES[reach.route]
    path = fill(route.path, ids) + fill(reach.query, ids)
    view = {**obj, "ids": ids}
    body = reach.body(view) if reach.body else None
    form = reach.form(view) if reach.form else None
    headers = dict(reach.headers)
    if "Idempotency-Key" in headers:
        headers["Idempotency-Key"] = fresh(headers["Idempotency-Key"])
    reply = await ctx.call(who, kind.api, route.method, path, body, form=form, headers=headers)
    sent = path + json.dumps(body) + json.dumps(form) + json.dumps(await ctx.headers(who, kind.api))
    return reply, sent


def with_placeholders(reply: Reply, ids: dict) -> Reply:
    """The reply with each id written as {name}: an answer that names the id it was asked for still compares."""
    def blank(text: str) -> str:
        for name, value in ids.items():
            text = text.replace(value, "{" + name + "}")
        return text
    return Reply(reply.status, {k: blank(v) for k, v in reply.headers.items()}, blank(reply.text))


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def ctx():
    async with started(Settings(port=0, prod_port=0, login_ciba_interval=0)) as client:
        yield Ctx(client)


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.parametrize(("kind", "env", "reach", "name"), list(cases()))
async def test_an_id_is_not_reachable_with_another_tenants_keys(ctx, kind: IdKind, env: str, reach: Reach, name: str):
    owner = kind.owners.get(env) or OWNERS[env]
    who = attacker_who(name, env)
    obj = await kind.create(ctx, owner)
    before = await kind.state(ctx, owner, obj, "before")

    reply, sent = await reach_once(ctx, who, kind, reach, obj["ids"], obj)
    want = expected(kind, reach, name)
    data = object_data(before, obj, sent)
    assert data, "nothing of the object to search the answer for"
    # what the real API would show: the body and the headers, not the sandbox's own Vipps-Sandbox-* explanation
    # (which names the owner by design, for the developer: docs/reference/security.md, "Tenancy")
    real_headers = json.dumps({k: v for k, v in reply.headers.items() if not k.lower().startswith("vipps-sandbox-")})
    leaked = [s for s in data if s in reply.text or s in real_headers]
    assert not leaked, f"the object's data {leaked} is in the answer to {name}: {reply.status} {reply.text}"

    # where the attacker may act on its own object of that id, a success is that (the owner's is checked below)
    mine = reach.own_namespace_for(name) and reply.status < 300
    if not mine:
        assert reply.status == want, (f"{name} reached {kind.name} by {reach.route}: {reply.status} (wanted {want})",
                                      reply.headers.get("Vipps-Sandbox-Reason"), reply.text)
        problem = error_format_problem(kind.api, reply.headers.get("Content-Type", ""), reply.text)
        assert problem is None, (problem, reply.text)
    if reply.status != 409 and not mine:
        # the caller cannot tell the id exists: an id of the same shape that nothing has gets the same answer (but
        # a 409 says, by design, that the id is taken: a MobilePay beacon is one printed code)
        absent_ids = {k: absent_like(v) for k, v in obj["ids"].items() if k not in ("paymentType", "topic",
                                                                                    "ledgerDate")}
        absent_ids = {**obj["ids"], **absent_ids}
        absent, _ = await reach_once(ctx, who, kind, reach, absent_ids, obj)
        assert caller_sees(with_placeholders(reply, obj["ids"])) == \
            caller_sees(with_placeholders(absent, absent_ids)), (reply.text, absent.text)

    after = await kind.state(ctx, owner, obj, "after")
    assert after == before, f"{name}'s {reach.route} changed {kind.name}"


# -- listings: an id is not reachable by listing either ---------------------------------------------------------
#: The routes that list what a caller has, by id kind: another tenant's listing never shows the owner's id.
LISTINGS = {
    "recurring-agreement-and-charge": (("recurring.agreements.list", "", {}),),
    "qr-merchant-redirect": (("qr.redirect.list", "", PNG),),
    "qr-merchant-callback": (("qr.callback.list", "", {}),),
    "qr-mobilepay-beacon": (("qr.callback.list", "", {}),),
    "ordermanagement-v3-category": (("ordermanagement.v3.categories.query", "", {}),),
    "webhook": (("webhooks.list", "", {}),),
    "report-ledger": (("report.ledgers", "", {}),),
    "management-product-order": (("management.product_orders.list", "", {}),),
    "management-sales-unit-and-merchant": (("management.sales_units.list", "", {}),),
    "management-price-package": (("management.price_packages", "", {}),),
    "donations-agreement": (("donations.payments", "?from=2020-01-01T00:00:00Z&to=2099-01-01T00:00:00Z", {}),),
}


def listing_cases():
    kinds = {kind.name: kind for kind in ID_KINDS}
    for kind_name, listings in LISTINGS.items():
        kind = kinds[kind_name]
        for env, (route, query, headers) in itertools.product(kind.envs, listings):
            for name in kind.attackers:
                if attacker_who(name, env).env == env_of(env) or name == OTHER_ENV:
                    yield pytest.param(kind, env, route, query, headers, name,
                                       id=f"{kind_name}-{env}-{route}-{name}")


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.parametrize(("kind", "env", "route", "query", "headers", "name"), list(listing_cases()))
async def test_another_tenants_listing_never_shows_the_id(ctx, kind: IdKind, env: str, route: str, query: str,
                                                          headers: dict, name: str):
    owner = kind.owners.get(env) or OWNERS[env]
    obj = await kind.create(ctx, owner)
    before = await kind.state(ctx, owner, obj, "before")
    policy = ROUTES[route]
    mine = await ctx.call(owner, kind.api, policy.method, policy.path + query, headers=headers)
    primary = next(iter(obj["ids"].values()))
    # the owner's own listing has it (the donations report lists payments: the marker is the one to A)
    assert mine.status == 200 and (primary in mine.text or obj["marker"] in mine.text), (mine.status, mine.text)

    reply = await ctx.call(attacker_who(name, env), kind.api, policy.method, policy.path + query, headers=headers)
    refused_first = kind.reaches[0].expect.get(name) == 403  # before any id: Recurring not allowed for the unit
    if name in POLICY_ATTACKERS or (name == "merchant-B" and policy.partners_only) or refused_first:
        assert reply.status == 403, reply.text
    else:
        assert reply.status == 200, (reply.status, reply.text)
    assert primary not in reply.text and obj["marker"] not in reply.text, reply.text
    assert await kind.state(ctx, owner, obj, "after") == before


# -- ids the client chooses: another tenant's are free to use, and using them changes nothing of the owner's -------


async def taken_epayment(ctx: Ctx, who: Who, obj: Obj) -> Reply:
    ref = obj["ids"]["reference"]
    body = {"amount": {"currency": "NOK", "value": 500}, "paymentMethod": {"type": "WALLET"}, "reference": ref,
            "userFlow": "WEB_REDIRECT", "returnUrl": "https://other.example/r", "paymentDescription": "other"}
    return await ctx.call(who, Api.EPAYMENT, "POST", EPAY, body, headers={"Idempotency-Key": ref})  # A's key too


async def taken_checkout(ctx: Ctx, who: Who, obj: Obj) -> Reply:
    body = {"type": "PAYMENT", "reference": obj["ids"]["reference"],
            "merchantInfo": {"callbackUrl": "https://other.example/cb", "returnUrl": "https://other.example/r",
                             "callbackAuthorizationToken": "other-token"},
            "transaction": {"amount": {"currency": "NOK", "value": 500}, "paymentDescription": "another shop"}}
    return await ctx.call(who, Api.CHECKOUT, "POST", CHK, body)


async def taken_redirect(ctx: Ctx, who: Who, obj: Obj) -> Reply:
    return await ctx.call(who, Api.QR, "POST", "/qr/v1/merchant-redirect",
                          {"id": obj["ids"]["id"], "redirectUrl": "https://example.com/other"}, headers=PNG)


async def taken_image(ctx: Ctx, who: Who, obj: Obj) -> Reply:
    return await ctx.call(who, Api.ORDER_MANAGEMENT, "POST", f"{OM}/v1/images",
                          {"imageId": obj["ids"]["imageId"], "src": tiny_png(180), "type": "base64"})


#: (id kind, how another tenant creates its own object with the owner's id, the status of a create).
CHOSEN_IDS = ((EPAYMENT, taken_epayment, 201), (CHECKOUT, taken_checkout, 200), (QR_REDIRECT, taken_redirect, 200),
              (IMAGE, taken_image, 200))


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.parametrize(("kind", "create", "status"), CHOSEN_IDS, ids=[k.name for k, _, _ in CHOSEN_IDS])
@pytest.mark.parametrize("env", ["test", "production"])
async def test_an_id_another_tenant_chose_is_free_for_everybody_else(ctx, kind, create, status, env):
    """References, QR ids and image ids are per sales unit (a reference of another MSN is "not found", vipps-apis.md
    2): another unit creating one with the same id (and the same Idempotency-Key) gets its own object, not a 409 that
    would tell the id is taken, nor the owner's idempotent answer."""
    owner = OWNERS[env]
    obj = await kind.create(ctx, owner)
    before = await kind.state(ctx, owner, obj, "before")
    other = attacker("merchant-B" if env == "test" else "partner-B-own-msn", env)
    reply = await create(ctx, other, obj)
    assert reply.status == status, reply.text
    assert obj["marker"] not in reply.text
    assert await kind.state(ctx, owner, obj, "after") == before


# -- webhook deliveries: an object's events reach its owner's registrations only ------------------------------------
EVENTS = ["epayments.payment.created.v1", "epayments.payment.authorized.v1", "epayments.payment.captured.v1",
          "recurring.agreement-activated.v1"]
#: Who registers for the events, by environment: True for those that must receive A's, False for those that must not.
RECEIVERS = {
    "test": {"merchant-A": (Who("merchant", A_UNIT, "test", A_UNIT), True),
             "merchant-B": (Who("merchant", B_UNIT, "test", B_UNIT), False)},
    "production": {"partner-A-for-A": (OWNERS["production"], True),
                   "partner-A-all-units": (Who("partner", PARTNER_A, "production"), True),
                   "merchant-A": (Who("merchant", A_UNIT, "production", A_UNIT), True),
                   "merchant-B": (Who("merchant", B_UNIT, "production", B_UNIT), False),
                   "partner-B-all-units": (Who("partner", PARTNER_B, "production"), False),
                   "partner-B-own-msn": (Who("partner", PARTNER_B, "production", B_PARTNER_UNIT), False),
                   "partner-A-for-B": (Who("partner", PARTNER_A, "production", B_UNIT), False)},
}


async def inbox(ctx: Ctx, env: str, name: str) -> list[dict]:
    reply = await ctx.sandbox.request("GET", f"/_sandbox/inbox/{name}", env)
    assert reply.status == 200, reply.text
    return reply.json["deliveries"]


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.parametrize("env", ["test", "production"])
async def test_an_objects_events_reach_its_owners_webhooks_only(ctx, env: str):
    """Webhook deliveries carry ids and data: a payment's and an agreement's events go to the registrations of the
    owner (its sales unit's keys, the partner for that unit or for all its units), never to another tenant's."""
    names = {name: fresh(f"ten-inbox-{name}") for name in RECEIVERS[env]}
    hooks = []
    for name, (who, _) in RECEIVERS[env].items():
        url = f"{ctx.sandbox.url(env)}/_sandbox/inbox/{names[name]}"
        hooks.append((who, ok(await ctx.call(who, Api.WEBHOOKS, "POST", "/webhooks/v1/webhooks",
                                             {"url": url, "events": EVENTS}), 201).json["id"]))
    owner = OWNERS[env]
    payment = await epayment_create(ctx, owner)
    reference = payment["ids"]["reference"]
    ok(await ctx.call(owner, Api.EPAYMENT, "POST", f"{EPAY}/{reference}/capture", amount(),
                      headers={"Idempotency-Key": fresh("cap")}), 200)
    agreement = (await recurring_create(ctx, owner))["ids"]["agreementId"]
    expected_count = 4  # created, authorized, captured, agreement activated
    for name, (_, receives) in RECEIVERS[env].items():
        if receives:
            deliveries = []
            for _ in range(250):
                deliveries = await inbox(ctx, env, names[name])
                if len(deliveries) >= expected_count:
                    break
                await asyncio.sleep(0.02)
            bodies = " ".join(d["body"] for d in deliveries)
            assert len(deliveries) == expected_count and reference in bodies and agreement in bodies, (name, bodies)
    for name, (_, receives) in RECEIVERS[env].items():  # by now every delivery of the others has been made too
        if not receives:
            assert await inbox(ctx, env, names[name]) == [], name
    for who, hook_id in hooks:  # the module's sandbox delivers nothing of these to later tests
        ok(await ctx.call(who, Api.WEBHOOKS, "DELETE", f"/webhooks/v1/webhooks/{hook_id}"))


def test_every_api_with_ids_is_covered():
    """Every route of an API (not the token endpoints or the control plane) whose path takes an id is reached here,
    and every listing read by another tenant, or EXEMPT and LISTING_EXEMPT say why not; so a new API with ids, a new
    route taking one or a new listing must join the table."""
    covered = {reach.route for kind in ID_KINDS for reach in kind.reaches}
    covered |= {route for listings in LISTINGS.values() for route, _, _ in listings}
    with_ids = {name for name, route in ROUTES.items()
                if "{" in route.path and route.api not in (Api.TOKEN, Api.SANDBOX)}
    missing = with_ids - covered - set(EXEMPT)
    assert not missing, f"routes with an id that the tenancy table does not reach: {sorted(missing)}"
    apis_with_ids = {ROUTES[name].api for name in with_ids}
    assert apis_with_ids <= {kind.api for kind in ID_KINDS}
    # every listing (a GET without an id) is read by another tenant too
    listings = {name for name, route in ROUTES.items() if route.method == "GET" and "{" not in route.path
                and route.api not in (Api.TOKEN, Api.SANDBOX)}
    unlisted = listings - {route for entries in LISTINGS.values() for route, _, _ in entries} - set(LISTING_EXEMPT)
    assert not unlisted, f"listings that no other tenant reads in the tenancy test: {sorted(unlisted)}"
    # and every Api that hands out an id in a body or a redirect is here too
    assert {Api.LOGIN, Api.USERINFO, Api.WEBHOOKS, Api.REPORT, Api.DONATIONS} <= {kind.api for kind in ID_KINDS}


def test_every_kind_meets_every_attacker_it_names():
    """The table's cases include each kind's owner environments and each attacker (none silently dropped)."""
    seen = {(p.values[0].name, p.values[1], p.values[3]) for p in cases()}
    for kind in ID_KINDS:
        for env in kind.envs:
            for name in kind.attackers:
                if attacker_who(name, env).env == env_of(env) or name == OTHER_ENV:
                    assert (kind.name, env, name) in seen, (kind.name, env, name)
