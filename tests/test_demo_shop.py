"""The demo shop's fault switches, driven over HTTP as an operator or a test would."""

from __future__ import annotations

import aiohttp
import pytest

from probes.demo_shop.app import FAULTS
from probes.demo_shop.faults import Faults
from probes.demo_shop.server import RunningShop


async def test_fault_switches_are_set_read_and_cleared_over_http(shop: RunningShop) -> None:
    async with aiohttp.ClientSession(shop.url) as http:
        async with http.post("/__faults", json={"checkout_500": True, "delay_ms": 5}) as set_:
            assert set_.status == 200
        async with http.get("/__faults") as read:
            state = await read.json()
        async with http.post("/checkout") as checkout:
            assert checkout.status == 500
        async with http.delete("/__faults") as clear:
            assert (await clear.json())["checkout_500"] is False

    assert state["checkout_500"] is True
    assert state["delay_ms"] == 5


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"chekout_500": True}, "unknown fault 'chekout_500'"),
        ({"delay_ms": "soon"}, "fault 'delay_ms' expects milliseconds"),
        ({"hang": "basket"}, "fault 'hang' expects home, product, cart or order"),
        ([1, 2], "expected a JSON object of fault switches"),
    ],
)
async def test_a_bad_fault_switch_gets_a_400_that_says_why(
    shop: RunningShop, body: object, message: str
) -> None:
    async with aiohttp.ClientSession(shop.url) as http, http.post("/__faults", json=body) as resp:
        assert resp.status == 400
        assert message in await resp.text()


async def test_query_flag_applies_a_fault_to_one_request_only(shop: RunningShop) -> None:
    async with aiohttp.ClientSession(shop.url) as http:
        async with http.get("/product/trail-runner?hide_add_to_cart=1") as hidden:
            assert "add-to-cart" not in await hidden.text()
        async with http.get("/product/trail-runner") as shown:
            assert "add-to-cart" in await shown.text()


async def test_the_sale_is_three_links_and_forms_away_from_home(shop: RunningShop) -> None:
    jar = aiohttp.CookieJar(unsafe=True)  # the cart lives in a cookie on an IP host
    async with aiohttp.ClientSession(shop.url, cookie_jar=jar) as http:
        async with http.get("/") as home:
            assert 'href="/product/trail-runner"' in await home.text()
        async with http.post("/cart/add", data={"slug": "trail-runner"}) as cart:
            assert "1 item in your cart" in await cart.text()
        async with http.post("/checkout", data={}) as order:
            assert "Thank you for your order" in await order.text()


async def test_a_blip_fails_the_next_orders_then_heals_by_itself(shop: RunningShop) -> None:
    shop.app[FAULTS].current = Faults(blip_checkouts=2)
    try:
        async with aiohttp.ClientSession(shop.url) as http:
            cookies = {"cart": '["trail-runner"]'}
            answers = []
            for _ in range(3):
                async with http.post("/checkout", cookies=cookies, allow_redirects=False) as r:
                    answers.append(r.status)
    finally:
        shop.app[FAULTS].current = Faults()

    assert answers == [500, 500, 303]
