"""The demo shop: home, product, cart, order confirmation; a sale in exactly three clicks.

Click 1: the product link on the home page. Click 2: "Add to cart" on the
product page. Click 3: "Place order" on the cart page, which lands on the
confirmation. The hero image is the home page's largest contentful paint.
"""

from __future__ import annotations

import asyncio
import html
import json
import random
import secrets
import time
from dataclasses import replace
from pathlib import Path

from aiohttp import web
from aiohttp.typedefs import Handler

from probes.demo_shop.faults import Faults, FaultSwitches

STATIC = Path(__file__).parent / "static"
FAULTS = web.AppKey("faults", FaultSwitches)
ORDERS = web.AppKey("orders", dict)
# What the shop itself measured of the delays it injected, by page ("home") or "hero":
# on a busy machine a 800 ms sleep takes longer, and tests compare with the truth.
DELAYS = web.AppKey("delays", dict)

PRODUCTS = {
    "trail-runner": ("Trail Runner shoes", 89.0, "Light trail shoes with a grippy sole."),
    "city-jacket": ("City rain jacket", 129.0, "Packs into its own pocket."),
    "day-pack": ("Day pack 20 L", 59.0, "Fits a laptop and lunch."),
}
PAGE_NAMES = ("home", "product", "cart", "order")
# A real shop's trap for text checks: "In stock" is a substring of "back in stock".
STOCK = {"city-jacket": "Sold out: back in stock next week"}


def create_app(faults: Faults | None = None) -> web.Application:
    """Build the shop; tests and ``parcours demo-shop`` both start it through here."""
    app = web.Application(middlewares=[_page_faults])
    app[FAULTS] = FaultSwitches(faults)
    app[ORDERS] = {}
    app[DELAYS] = {}
    app[TOKENS] = set()
    app.router.add_get("/", home, name="home")
    app.router.add_get("/product/{slug}", product, name="product")
    app.router.add_get("/cart", cart, name="cart")
    app.router.add_post("/cart/add", cart_add)
    app.router.add_post("/checkout", checkout)
    app.router.add_get("/order/{order_id}", order, name="order")
    app.router.add_post("/order/{order_id}/cancel", cancel_order)
    app.router.add_get("/static/hero.svg", hero_image)
    app.router.add_static("/static", STATIC)
    app.router.add_get("/__faults", get_faults)
    app.router.add_post("/__faults", set_faults)
    app.router.add_delete("/__faults", clear_faults)
    app.router.add_get("/static/banner.svg", banner_image)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/api/health", api_health)
    app.router.add_post("/api/login", api_login)
    app.router.add_get("/api/cart", api_cart)
    app.router.add_get("/device", device, name="device")
    app.router.add_get("/help", help_page, name="help")
    app.router.add_get("/search", search, name="search")
    return app


def current_faults(request: web.Request) -> Faults:
    """The app's switches, overridden by query flags on this one request."""
    faults = request.app[FAULTS].current
    flags = {k: v for k, v in request.query.items() if k in Faults.__dataclass_fields__}
    return faults.merged(flags) if flags else faults


@web.middleware
async def _page_faults(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Server delay and hangs apply to HTML pages, as they would on a slow backend."""
    route = request.match_info.route.name
    if route in PAGE_NAMES and request.method == "GET":
        try:
            faults = current_faults(request)
        except ValueError as exc:
            raise web.HTTPBadRequest(text=str(exc)) from None
        if faults.hang == route:
            await asyncio.Event().wait()  # until the client gives up and aiohttp cancels us
        if faults.delay_ms:
            await _measured_sleep(request, route, faults.delay_ms)
    response: web.StreamResponse = await handler(request)
    return response


async def _measured_sleep(request: web.Request, what: str, delay_ms: int) -> None:
    started = time.perf_counter()
    await asyncio.sleep(delay_ms / 1000)
    request.app[DELAYS][what] = time.perf_counter() - started


async def healthz(_: web.Request) -> web.Response:
    """Liveness for whoever started the shop."""
    return web.Response(text="ok")


COOKIE_BANNER = """<div class="cookies" role="dialog" aria-label="Cookies">
<p>We use cookies to remember your cart.</p>
<button type="button" class="buy" onclick="document.cookie='consent=yes; path=/';
this.closest('.cookies').remove()">Accept all</button></div>"""


def _extras(request: web.Request | None) -> str:
    """What a real shop adds to its pages: a cookie banner on some visits, and a chat
    widget from another site (its script throws: a third party's bug, not the shop's)."""
    if request is None:
        return ""
    faults = current_faults(request)
    extras = ""
    if "consent" not in request.cookies and random.random() * 100 < faults.cookie_banner_percent:
        extras += COOKIE_BANNER
    if faults.third_party_script:
        host, _, port = request.host.partition(":")
        other = "localhost" if host != "localhost" else "127.0.0.1"
        extras += f'<script src="http://{other}:{port}/static/chat-widget.js" async></script>'
    return extras


def _page(
    title: str, body: str, script: str = "", head: str = "", request: web.Request | None = None
) -> web.Response:
    extras = _extras(request)
    document = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)} · Parcours demo shop</title>
<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">
<link rel="stylesheet" href="/static/shop.css">{head}
</head><body>
<header class="top"><a href="/" class="brand">Parcours demo shop</a>
<button type="button" class="menu-toggle" aria-expanded="false" aria-controls="site-nav">Menu
</button><nav id="site-nav" class="site-nav" aria-label="Main"><a href="/help?from=header">Help</a>
<form role="search" action="/search"><input type="search" name="q" aria-label="Search"
 placeholder="Search the shop"></form></nav>
<a href="/cart" class="cart-link" data-testid="cart-link">Cart</a></header>
<main>{body}</main>
<footer><nav aria-label="Footer"><a href="/help?from=footer">Help</a></nav>
A demo site bundled with Parcours, for synthetic monitoring.</footer>
<script src="/static/shop.js" defer></script>{script}{extras}
</body></html>"""
    return web.Response(text=document, content_type="text/html")


async def home(request: web.Request) -> web.Response:
    """Landing page: hero image (the LCP element) and the product grid."""
    faults = current_faults(request)
    banner = (
        # No width/height: when it arrives it pushes everything down (a classic CLS bug).
        '<img src="/static/banner.svg" alt="Free shipping this week" class="banner">'
        if faults.layout_shift
        else ""
    )
    cards = "".join(
        f'<li class="card"><a href="/product/{slug}">{html.escape(name)}</a>'
        f"<span class=price>{price:.2f} €</span></li>"
        for slug, (name, price, _) in PRODUCTS.items()
    )
    hero_query = f"?delay_ms={faults.lcp_delay_ms}" if faults.lcp_delay_ms else ""
    body = f"""{banner}
<section class="hero"><img src="/static/hero.svg{hero_query}" alt="Autumn collection"
 width="1200" height="600" fetchpriority="high" class="hero-img">
<h1>Autumn collection</h1></section>
<h2>Popular right now</h2><ul class="grid">{cards}</ul>"""
    return _page("Home", body, request=request)


async def product(request: web.Request) -> web.Response:
    """Product page with the add-to-cart form (a plain POST, enhanced by JS)."""
    slug = request.match_info["slug"]
    if slug not in PRODUCTS:
        raise web.HTTPNotFound(text="no such product")
    name, price, blurb = PRODUCTS[slug]
    faults = current_faults(request)
    button = (
        ""
        if faults.hide_add_to_cart
        else '<button type="submit" class="buy" data-testid="add-to-cart">Add to cart</button>'
    )
    script = (
        "<script>window.addEventListener('load', () => "
        "{ throw new Error('demo fault: price widget crashed'); });</script>"
        if faults.js_error
        else ""
    )
    broken = (
        '<img src="/static/size-chart.png" alt="Size chart" width="200" height="100">'
        if faults.broken_image
        else ""
    )
    body = f"""<article class="product"><img src="/static/product.svg" alt="{html.escape(name)}"
 width="480" height="360"><div><h1>{html.escape(name)}</h1><p>{html.escape(blurb)}</p>
<p class="price" data-testid="price">{price:.2f} €</p>
<p class="stock">{html.escape(STOCK.get(slug, "In stock"))}</p>{broken}
<form method="post" action="/cart/add"><input type="hidden" name="slug" value="{slug}">
<label>Size <select name="size"><option>40</option><option selected>42</option>
<option>44</option></select></label>{button}</form></div></article>"""
    return _page(name, body, script, request=request)


def _cart_items(request: web.Request) -> list[str]:
    try:
        items = json.loads(request.cookies.get("cart", "[]"))
    except ValueError:
        return []
    return [i for i in items if isinstance(i, str) and i in PRODUCTS]


async def cart_add(request: web.Request) -> web.Response:
    """Add a product and go to the cart (Post/Redirect/Get)."""
    form = await request.post()
    slug = str(form.get("slug", ""))
    if slug not in PRODUCTS:
        raise web.HTTPBadRequest(text="unknown product")
    response = web.HTTPSeeOther("/cart")
    response.set_cookie("cart", json.dumps([*_cart_items(request), slug]), httponly=True)
    raise response


async def cart(request: web.Request) -> web.Response:
    """Cart with a voucher field and the order button."""
    items = _cart_items(request)
    if not items:
        return _page("Cart", '<h1>Your cart is empty</h1><p><a href="/">Back to the shop</a></p>')
    rows = "".join(
        f"<li>{html.escape(PRODUCTS[s][0])} <span>{PRODUCTS[s][1]:.2f} €</span></li>" for s in items
    )
    total = sum(PRODUCTS[s][1] for s in items)
    count = f"{len(items)} item" + ("s" if len(items) > 1 else "")
    body = f"""<h1>Your cart</h1><p data-testid="cart-count">{count} in your cart</p>
<ul class="lines">{rows}</ul><p class="total">Total {total:.2f} €</p>
<form method="post" action="/checkout">
<label>Voucher code <input name="voucher" autocomplete="off"></label>
<label>E-mail <input name="email" type="email" placeholder="you@example.com"></label>
<label>Country <select name="country"><option>France</option><option>Canada</option>
<option>Germany</option></select></label>
<fieldset><legend>Delivery</legend>
<label><input type="radio" name="delivery" value="standard" checked> Standard</label>
<label><input type="radio" name="delivery" value="express"> Express</label></fieldset>
<label><input type="checkbox" name="newsletter" checked> Send me the newsletter</label>
<button type="submit" class="buy">Place order</button></form>"""
    return _page("Cart", body, request=request)


async def checkout(request: web.Request) -> web.Response:
    """Place the order; the ``checkout_500`` fault makes the payment backend fail."""
    switches = request.app[FAULTS]
    blip = switches.current.blip_checkouts
    if blip:  # one fewer to fail: a blip heals by itself
        switches.current = replace(switches.current, blip_checkouts=blip - 1)
    if current_faults(request).checkout_500 or blip:
        return web.Response(
            status=500, text="payment service unavailable", content_type="text/html"
        )
    items = _cart_items(request)
    if not items:
        raise web.HTTPSeeOther("/cart")
    form = await request.post()
    order_id = secrets.token_hex(6)
    orders = request.app[ORDERS]
    orders[order_id] = {
        "items": items,
        "voucher": bool(form.get("voucher")),
        "delivery": "Express" if form.get("delivery") == "express" else "Standard",
        "country": str(form.get("country") or "France")[:40],
        "newsletter": bool(form.get("newsletter")),
        "cancelled": False,
    }
    while len(orders) > 1000:  # bounded: the demo runs for days under a scheduler
        orders.pop(next(iter(orders)))
    response = web.HTTPSeeOther(f"/order/{order_id}")
    response.del_cookie("cart")
    raise response


async def order(request: web.Request) -> web.Response:
    """Order confirmation: the end of the sale."""
    placed = request.app[ORDERS].get(request.match_info["order_id"])
    if placed is None:
        raise web.HTTPNotFound(text="no such order")
    order_id = html.escape(request.match_info["order_id"])
    voucher = "<p>Your voucher was applied.</p>" if placed["voucher"] else ""
    if placed.get("cancelled"):
        return _page("Order cancelled", f"<h1>Order {order_id} is cancelled</h1>")
    newsletter = "" if placed.get("newsletter") else "<p>No newsletter.</p>"
    body = f"""<h1>Thank you for your order</h1>
<p data-testid="order-id">Order {order_id}</p>{voucher}
<p>{placed["delivery"]} delivery to {html.escape(placed["country"])}.</p>{newsletter}
<form method="post" action="/order/{order_id}/cancel">
<button type="submit">Cancel order</button></form>"""
    return _page("Order confirmed", body, request=request)


async def cancel_order(request: web.Request) -> web.Response:
    """What a monitoring journey's clean-up calls, so that test orders never ship."""
    placed = request.app[ORDERS].get(request.match_info["order_id"])
    if placed is None:
        raise web.HTTPNotFound(text="no such order")
    placed["cancelled"] = True
    raise web.HTTPSeeOther(f"/order/{request.match_info['order_id']}")


async def device(request: web.Request) -> web.Response:
    """What the shop sees of the visitor: user agent (server side) and viewport (script)."""
    agent = html.escape(request.headers.get("User-Agent", ""))
    body = f"""<h1>Your device</h1><p data-testid="user-agent">{agent}</p>
<p data-testid="viewport">viewport unknown</p>
<script>document.querySelector('[data-testid=viewport]').textContent =
  'viewport ' + innerWidth + 'x' + innerHeight + (matchMedia('(pointer: coarse)').matches
  ? ' touch' : ' mouse');</script>"""
    return _page("Your device", body)


async def help_page(request: web.Request) -> web.Response:
    """Reached from the header or the footer: two links of the same name, in two regions."""
    came_from = "the footer" if request.query.get("from") == "footer" else "the header"
    body = f"<h1>Help</h1><p>You came from {came_from}.</p>"
    return _page("Help", body)


async def search(request: web.Request) -> web.Response:
    """Search results; the box sits in the header, behind the menu button on a phone."""
    query = request.query.get("q", "").strip().lower()
    found = [(s, p[0]) for s, p in PRODUCTS.items() if query and query in p[0].lower()]
    items = "".join(f'<li><a href="/product/{s}">{html.escape(n)}</a></li>' for s, n in found)
    heading = f"{len(found)} result" + ("" if len(found) == 1 else "s")
    return _page("Search", f'<h1>{heading}</h1><ul class="lines">{items}</ul>')


async def hero_image(request: web.Request) -> web.StreamResponse:
    """The LCP image; ``lcp_delay_ms`` holds it back to prove LCP measurement."""
    delay = current_faults(request).lcp_delay_ms
    if delay:
        await _measured_sleep(request, "hero", delay)
    return web.FileResponse(STATIC / "hero-image.svg", headers={"Cache-Control": "no-store"})


async def banner_image(_: web.Request) -> web.StreamResponse:
    """The late banner of the layout-shift fault: arrives well after the first paint (1 s,
    so that even a busy machine has painted the page before it pushes the content down)."""
    await asyncio.sleep(1.0)
    return web.FileResponse(STATIC / "banner-image.svg", headers={"Cache-Control": "no-store"})


# --- the JSON API behind the (imaginary) mobile app ---------------------------------------

DEMO_USER, DEMO_PASSWORD = "demo", "demo-password"
TOKENS = web.AppKey("tokens", set)


async def _api_answer(request: web.Request, payload: object) -> web.Response:
    """The API's answer, through its fault switches (status, delay, broken JSON)."""
    faults = current_faults(request)
    if faults.api_delay_ms:
        await _measured_sleep(request, "api", faults.api_delay_ms)
    if faults.api_malformed:
        return web.Response(text='{"status": "ok", "items": [', content_type="application/json")
    status = faults.api_status or 200
    return web.json_response(payload, status=status)


async def api_health(request: web.Request) -> web.Response:
    """What a load balancer or the app's splash screen asks first."""
    return await _api_answer(request, {"status": "ok", "version": "1.4.2"})


async def api_login(request: web.Request) -> web.Response:
    """Log the demo user in; the token it returns opens the cart."""
    try:
        credentials = await request.json()
    except ValueError:
        raise web.HTTPBadRequest(text="expected a JSON body") from None
    if not isinstance(credentials, dict) or (
        credentials.get("user"),
        credentials.get("password"),
    ) != (DEMO_USER, DEMO_PASSWORD):
        return web.json_response({"error": "wrong user or password"}, status=401)
    token = secrets.token_urlsafe(24)
    tokens = request.app[TOKENS]
    tokens.add(token)
    while len(tokens) > 1000:  # bounded, like orders
        tokens.pop()
    return await _api_answer(request, {"token": token, "expires_in": 3600})


async def api_cart(request: web.Request) -> web.Response:
    """The cart as the app shows it; needs the login's bearer token."""
    token = request.headers.get("Authorization", "").removeprefix("Bearer ")
    if token not in request.app[TOKENS]:
        return web.json_response({"error": "login first"}, status=401)
    items = [{"sku": "trail-runner", "name": PRODUCTS["trail-runner"][0], "quantity": 1}]
    return await _api_answer(request, {"items": items, "count": len(items)})


async def get_faults(request: web.Request) -> web.Response:
    """The switches now in force."""
    return web.json_response(request.app[FAULTS].current.as_dict())


async def set_faults(request: web.Request) -> web.Response:
    """Merge the JSON body into the switches; a bad switch is a 400 that says why."""
    try:
        changes = await request.json()
        if not isinstance(changes, dict):
            raise ValueError("expected a JSON object of fault switches")
        switches = request.app[FAULTS]
        switches.current = switches.current.merged(changes)
    except ValueError as exc:
        raise web.HTTPBadRequest(text=str(exc)) from None
    return web.json_response(request.app[FAULTS].current.as_dict())


async def clear_faults(request: web.Request) -> web.Response:
    """Everything back to healthy."""
    request.app[FAULTS].current = Faults()
    return web.json_response(request.app[FAULTS].current.as_dict())
