"""Per-document measures of a run, taken without slowing the journey down.

Where each measure comes from, and why:
- LCP and layout shifts: Chromium's ``PerformanceTimeline`` CDP domain. It
  pushes entries out of the renderer as they happen, so they survive the
  navigation that a click triggers (an in-page observer's state dies with
  the document before anyone can read it).
- Bytes, requests and failed requests: the ``Network`` CDP domain, whose
  ``encodedDataLength`` is what actually crossed the wire, cross-origin too.
- TTFB: the larger of the page's Navigation Timing and the document's DevTools
  network timing (first request of its redirect chain to response headers).
  Under an emulated network Chromium adds the latency below the layer that
  Navigation Timing sees, so the page alone would report a 3G TTFB of 4 ms.
- FCP, DOMContentLoaded, load and interactions: an in-page script
  (vitals.js) reports each as soon as it is known through a raw CDP binding,
  a one-way message that needs no round trip and so survives navigation too
  (on a fast site ``load`` fires before the first paint, so reading FCP at
  ``load`` would miss it).
- Console errors, uncaught exceptions, crashes: Playwright page events.
"""

from __future__ import annotations

import asyncio
import inspect
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from playwright.async_api import BrowserContext, CDPSession, ConsoleMessage, Error, Page

from probes.conditions import Conditions
from probes.result import TIMINGS, VITAL_THRESHOLDS, FailedRequest, PageResult, rate
from probes.runners.sites import same_site, script_url

INIT_SCRIPT = (Path(__file__).with_name("vitals.js")).read_text(encoding="utf-8")
BINDING = "__parcoursReport"
SETTLE = "() => window.__parcours ? window.__parcours.settle() : null"
SETTLE_TIMEOUT_SECONDS = 2.0
MAX_LISTED = 20  # failed requests and console lines kept per page; counts stay exact
CLS_GAP_SECONDS, CLS_WINDOW_SECONDS = 1.0, 5.0
ERROR_PAGE = "chrome-error://"  # what Chromium shows when a page could not be loaded


@dataclass
class DocumentRecord:
    """Everything seen for one main-frame document, filled as events arrive."""

    step: str
    url: str
    started_at: float
    status: int | None = None
    method: str = "GET"
    origin: float | None = None  # performance.timeOrigin, epoch milliseconds
    requested_at: float | None = None  # DevTools monotonic seconds, first request of the chain
    headers_at: float | None = None  # DevTools monotonic seconds, final response headers
    timing: dict[str, Any] = field(default_factory=dict)
    interactions: list[tuple[float, float]] = field(default_factory=list)  # (epoch s, s)
    requests: int = 0
    transfer_bytes: int = 0
    failed: list[FailedRequest] = field(default_factory=list)
    failed_count: int = 0
    console_errors: list[str] = field(default_factory=list)
    js_exceptions: list[str] = field(default_factory=list)
    third_party_js_exceptions: list[str] = field(default_factory=list)
    navigation_error: str | None = None


@dataclass
class _Request:
    url: str
    method: str
    resource_type: str
    document: DocumentRecord
    status: int | None = None


def _listener(method: Callable[[Any], None]) -> Callable[[Any], None]:
    """``method`` as a plain one-argument function that carries its signature. Playwright
    works out a handler's signature at every event it delivers (to pass only the arguments
    the handler takes): for a bound method that cost 8.6 ms of a desktop checkout's 125
    events, 1.5 ms with ``__signature__`` set."""

    def listener(event: Any) -> None:
        method(event)

    listener.__signature__ = inspect.signature(listener)  # type: ignore[attr-defined]
    return listener


class PageMonitor:
    """Attaches to one page for one run and turns what it sees into PageResults."""

    def __init__(self, page: Page, cdp: CDPSession, main_frame_id: str) -> None:
        self._page = page
        self._cdp = cdp
        self._main_frame = main_frame_id
        self._requests: dict[str, _Request] = {}
        self._timeline: list[dict[str, Any]] = []
        self.documents: list[DocumentRecord] = []
        self.step = ""
        self.crashed = False
        self._cpu_slowdown = 1.0
        self.step_exceptions: list[str] = []  # the site's own scripts', this step
        self.step_third_party_exceptions: list[str] = []
        self._awaiting_response: DocumentRecord | None = None

    @classmethod
    async def attach(cls, context: BrowserContext, page: Page) -> PageMonitor:
        """Start listening before the first navigation so that nothing is missed."""
        cdp = await context.new_cdp_session(page)
        tree = await cdp.send("Page.getFrameTree")
        monitor = cls(page, cdp, tree["frameTree"]["frame"]["id"])
        cdp.on("Network.requestWillBeSent", _listener(monitor._on_request))
        cdp.on("Network.responseReceived", _listener(monitor._on_response))
        cdp.on("Network.loadingFinished", _listener(monitor._on_finished))
        cdp.on("Network.loadingFailed", _listener(monitor._on_failed))
        cdp.on("PerformanceTimeline.timelineEventAdded", _listener(monitor._on_timeline))
        cdp.on("Runtime.bindingCalled", _listener(monitor._on_binding))
        page.on("console", _listener(monitor._on_console))
        page.on("pageerror", _listener(monitor._on_page_error))
        page.on("crash", _listener(monitor._on_crash))
        await cdp.send("Runtime.enable")  # bindings are only installed with Runtime enabled
        await cdp.send("Runtime.addBinding", {"name": BINDING})
        await cdp.send("Network.enable")
        await cdp.send(
            "PerformanceTimeline.enable",
            {"eventTypes": ["largest-contentful-paint", "layout-shift"]},
        )
        return monitor

    def pending_navigation(self) -> str | None:
        """``METHOD URL`` of a page load still waiting for its server, else None.

        While one is pending, Playwright holds every evaluate until the new
        document commits, so callers must not touch the page then.
        """
        document = self._awaiting_response
        return f"{document.method} {document.url}" if document is not None else None

    @property
    def current(self) -> DocumentRecord | None:
        """The document now shown, or None before the first navigation."""
        return self.documents[-1] if self.documents else None

    # --- events -----------------------------------------------------------

    def _on_request(self, event: dict[str, Any]) -> None:
        request = event["request"]
        is_document = event.get("type") == "Document" and event.get("frameId") == self._main_frame
        previous = self._requests.get(event["requestId"])
        if previous is not None and "redirectResponse" in event:
            previous.document.transfer_bytes += int(
                event["redirectResponse"].get("encodedDataLength", 0)
            )
        if is_document and previous is None:
            self.documents.append(
                DocumentRecord(
                    self.step, request["url"], event["wallTime"], method=request["method"]
                )
            )
            self._awaiting_response = self.documents[-1]
            self.documents[-1].requested_at = float(event["timestamp"])
        elif is_document and self.current is not None:
            self.current.url = request["url"]  # a redirect: the same document, a new URL
            self.current.method = request["method"]
        document = self.current
        if document is None:
            return
        if previous is None:
            document.requests += 1
        self._requests[event["requestId"]] = _Request(
            request["url"], request["method"], event.get("type", "Other"), document
        )

    def _on_response(self, event: dict[str, Any]) -> None:
        request = self._requests.get(event["requestId"])
        if request is None:
            return
        request.status = int(event["response"]["status"])
        if event.get("type") == "Document" and request.document.url == request.url:
            request.document.status = request.status
            timing = event["response"].get("timing")
            request.document.headers_at = (
                float(timing["requestTime"]) + float(timing["receiveHeadersEnd"]) / 1000
                if timing
                else float(event["timestamp"])
            )
            if self._awaiting_response is request.document:
                self._awaiting_response = None
        if request.status >= 400:
            self._record_failure(request, None)

    def _on_finished(self, event: dict[str, Any]) -> None:
        request = self._requests.pop(event["requestId"], None)
        if request is not None:
            request.document.transfer_bytes += int(event.get("encodedDataLength", 0))

    def _on_failed(self, event: dict[str, Any]) -> None:
        request = self._requests.pop(event["requestId"], None)
        if request is None or event.get("canceled"):
            return
        error = str(event.get("errorText") or "failed")
        self._record_failure(request, error)
        if request.document.url == request.url and request.resource_type == "Document":
            request.document.navigation_error = error
            if self._awaiting_response is request.document:
                self._awaiting_response = None

    def _record_failure(self, request: _Request, error: str | None) -> None:
        document = request.document
        document.failed_count += 1
        if len(document.failed) < MAX_LISTED:
            document.failed.append(
                FailedRequest(
                    request.url, request.method, request.status, error, request.resource_type
                )
            )

    def _on_timeline(self, event: dict[str, Any]) -> None:
        if event["event"].get("frameId") == self._main_frame:
            self._timeline.append(event["event"])

    def _on_console(self, message: ConsoleMessage) -> None:
        document = self.current
        if message.type == "error" and document and len(document.console_errors) < MAX_LISTED:
            document.console_errors.append(message.text[:500])

    def navigation_errors(self, since: int) -> list[DocumentRecord]:
        """Documents loaded since index ``since`` whose navigation failed (net::ERR_...)."""
        return [d for d in self.documents[since:] if d.navigation_error is not None]

    def _on_page_error(self, error: Error) -> None:
        text = f"{error.name}: {error.message}"[:500] if error.name else error.message[:500]
        document = self.current
        source = script_url(error.stack or "")
        if source is not None and document is not None and not same_site(source, document.url):
            text = f"{text} (from {source})"[:500]
            self.step_third_party_exceptions.append(text)
            listed = document.third_party_js_exceptions
        else:
            self.step_exceptions.append(text)
            listed = document.js_exceptions if document is not None else []
        if len(listed) < MAX_LISTED:
            listed.append(text)

    def _on_crash(self, _: Page) -> None:
        self.crashed = True

    # --- reading ----------------------------------------------------------

    def _on_binding(self, event: dict[str, Any]) -> None:
        if event.get("name") != BINDING:
            return
        try:
            message = json.loads(event["payload"])
            if str(message["url"]).startswith(ERROR_PAGE):
                return  # Chromium's own error page: its "good" vitals are not the site's
            document = self._document_for(float(message["origin"]), str(message["url"]))
        except (ValueError, KeyError, TypeError):
            return  # not ours, or mangled: ignore rather than trust it
        if document is None:
            return
        kind = message.get("kind")
        if kind == "fcp":
            document.timing["fcp"] = message.get("value")
        elif kind == "navigation":
            document.timing.update(message)
        elif kind == "interaction":
            began = (document.origin or 0) / 1000 + float(message["start"]) / 1000
            document.interactions.append((began, float(message["duration"]) / 1000))

    def _document_for(self, origin: float, url: str) -> DocumentRecord | None:
        """The document a message came from: bound by its time origin on first contact."""
        known = next((d for d in reversed(self.documents) if d.origin == origin), None)
        if known is not None:
            return known
        unbound = [d for d in self.documents if d.origin is None]
        match = next((d for d in reversed(unbound) if d.url == url), None)
        chosen = match or (unbound[-1] if unbound else None)
        if chosen is not None:
            chosen.origin = origin
        return chosen

    async def emulate(self, conditions: Conditions) -> None:
        """Apply network and CPU conditions for the whole run (before the first step)."""
        if conditions.network.name == "none" and conditions.cpu_slowdown == 1:
            return  # nothing to emulate: spare two round trips on every desktop run
        await self._cdp.send("Network.emulateNetworkConditions", conditions.network.cdp())
        await self._cdp.send("Emulation.setCPUThrottlingRate", {"rate": conditions.cpu_slowdown})
        self._cpu_slowdown = conditions.cpu_slowdown

    async def end_cpu_slowdown(self) -> None:
        """Once the measured steps are over, before evidence and clean-up. Chromium slows a
        page by busy-waiting its main thread in a signal handler, whether the page works or
        idles (at 4x, three quarters of a core for as long as it is on): nothing that is
        not measured should pay for it. The network conditions stay: they cost nothing."""
        if self._cpu_slowdown == 1 or self.crashed or self._page.is_closed():
            return
        try:
            await self._cdp.send("Emulation.setCPUThrottlingRate", {"rate": 1})
            self._cpu_slowdown = 1.0
        except Error:
            return  # the page is gone; closing its context ends the throttling anyway

    async def settle(self) -> None:
        """At the end of a run: let one frame paint so the last page's entries are reported."""
        if self.current is None or self.crashed or self.pending_navigation():
            return
        try:
            await asyncio.wait_for(self._page.evaluate(SETTLE), SETTLE_TIMEOUT_SECONDS)
        except (TimeoutError, Error):
            return  # the page is hung or gone; its measures stay null with a reason
        # Events sent before the reply arrive first on the same ordered connection; one
        # turn of the loop lets their handlers finish.
        await asyncio.sleep(0)

    def results(self) -> list[PageResult]:
        """One PageResult per document, with explicit reasons for anything missing."""
        return [self._page_result(i, doc) for i, doc in enumerate(self.documents)]

    def _page_result(self, index: int, doc: DocumentRecord) -> PageResult:
        values: dict[str, float | None] = dict.fromkeys(TIMINGS)
        missing: dict[str, str] = {}
        if doc.origin is None or "load" not in doc.timing:
            reason = (
                doc.navigation_error or "the page never finished loading (hung, failed or left)"
            )
            missing = dict.fromkeys(values, reason)
        if doc.origin is not None:
            values.update(_timing_values(doc))
            if doc.requested_at is not None and doc.headers_at is not None:
                network_ttfb = _at_browser_resolution(max(0.0, doc.headers_at - doc.requested_at))
                values["ttfb_seconds"] = max(values["ttfb_seconds"] or 0.0, network_ttfb)
            later = [d.origin for d in self.documents[index + 1 :] if d.origin is not None]
            end = later[0] if later else None
            events = [e for e in self._timeline if _in_document(e, doc.origin, end)]
            values["lcp_seconds"] = _lcp(events, doc.origin)
            values["cls"] = _cls(events) if "load" in doc.timing else None
            missing.update(_missing_reasons(values, doc.timing))
            missing = {k: v for k, v in missing.items() if values.get(k) is None}
        ratings = {}
        for name in VITAL_THRESHOLDS:
            rating = rate(name, values[name])
            if rating is not None:
                ratings[name] = rating.value
        return PageResult(
            step=doc.step,
            url=doc.url,
            transfer_bytes=doc.transfer_bytes,
            requests=doc.requests,
            failed_requests=tuple(doc.failed),
            console_errors=tuple(doc.console_errors),
            js_exceptions=tuple(doc.js_exceptions),
            third_party_js_exceptions=tuple(doc.third_party_js_exceptions),
            ratings=ratings,
            missing=missing,
            **values,
        )

    def interactions_between(self, start: float, end: float) -> float | None:
        """Slowest interaction (seconds) that began within a step's wall-clock window."""
        durations = [
            duration
            for doc in self.documents
            for began, duration in doc.interactions
            if start - 0.05 <= began <= end
        ]
        return max(durations, default=None)


def _at_browser_resolution(seconds: float) -> float:
    """A page timing at the 0.1 ms browsers time pages at, the noise below left out: the
    in-page ones come through a 32-bit float (125.2 ms as 125.20000000298023), epoch
    seconds minus a time origin carry ~1e-7 s. Every scrape formats these values; the
    noise made that 16 % slower (bench.metrics_values)."""
    return round(seconds, 4)


def _timing_values(doc: DocumentRecord) -> dict[str, float | None]:
    def seconds(key: str) -> float | None:
        value = doc.timing.get(key)
        if isinstance(value, int | float) and value > 0:
            return _at_browser_resolution(value / 1000)
        return None

    inp = max((duration for _, duration in doc.interactions), default=None)
    return {
        "ttfb_seconds": seconds("ttfb"),
        "fcp_seconds": seconds("fcp"),
        "dom_content_loaded_seconds": seconds("dcl"),
        "load_seconds": seconds("load"),
        "inp_seconds": inp,
    }


def _in_document(event: dict[str, Any], origin_ms: float, end_ms: float | None) -> bool:
    when = float(event["time"]) * 1000
    return when >= origin_ms - 1 and (end_ms is None or when < end_ms)


def _lcp(events: list[dict[str, Any]], origin_ms: float) -> float | None:
    times = [float(e["time"]) for e in events if e["type"] == "largest-contentful-paint"]
    return _at_browser_resolution(max(0.0, times[-1] - origin_ms / 1000)) if times else None


def _cls(events: list[dict[str, Any]]) -> float:
    """CLS as Google defines it: the largest session window of unexpected shifts."""
    best = current = 0.0
    window_start = last = -1e9
    for event in events:
        details = event.get("layoutShiftDetails")
        if event["type"] != "layout-shift" or not details or details.get("hadRecentInput"):
            continue
        when = float(event["time"])
        if when - last > CLS_GAP_SECONDS or when - window_start > CLS_WINDOW_SECONDS:
            window_start, current = when, 0.0
        current += float(details["value"])
        last = when
        best = max(best, current)
    return best


def _missing_reasons(values: dict[str, float | None], timing: dict[str, Any]) -> dict[str, str]:
    reasons = {
        "ttfb_seconds": "no response timing for this document",
        "fcp_seconds": "nothing was painted before the page was left",
        "lcp_seconds": "no largest contentful paint was reported before the page was left",
        "dom_content_loaded_seconds": "DOMContentLoaded had not fired",
        "load_seconds": "the load event had not finished",
        "inp_seconds": "no interaction slower than 16 ms was observed on this page",
    }
    if not timing.get("hasEventTiming", True):
        reasons["inp_seconds"] = "this browser does not report event timing"
    return {name: text for name, text in reasons.items() if values.get(name) is None}
