"""Status pages: what the on-call person opens first, often on a phone.

Server-rendered HTML, one small stylesheet, no JavaScript: an overview of
every journey, a journey page (recent runs as a strip, step durations,
budgets) and a run page (a waterfall of steps, page timings, the failure
screenshot, the error, links to the HTML and the trace). Everything that came
from a run is escaped.
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote

from aiohttp import web

from probes.result import MEASURES_BY_FIELD

STATUS_COLOURS = {
    "passed": "#1b7f3b",
    "degraded": "#b26b00",
    "failed": "#c0182c",
    "skipped": "#6b7280",
}
STYLE = """
*{box-sizing:border-box}body{margin:0;font:15px/1.45 system-ui,sans-serif;color:#1d2433;
background:#f6f6f3}header{background:#1d2433;color:#fff;padding:10px 14px}header a{color:#fff;
text-decoration:none;font-weight:600}main{padding:12px;max-width:1100px;margin:0 auto}
h1{font-size:1.3rem;margin:.4rem 0}h2{font-size:1.05rem;margin:1.2rem 0 .4rem}
table{border-collapse:collapse;width:100%;background:#fff}td,th{padding:6px 8px;
border-bottom:1px solid #e3e3de;text-align:left;vertical-align:top;overflow-wrap:anywhere}
table.fixed{table-layout:fixed}table.fixed th:nth-child(2),table.fixed th:nth-child(3)
{width:5.5rem}li{overflow-wrap:anywhere}th{font-size:.85rem;
color:#555}.badge{display:inline-block;padding:1px 8px;border-radius:10px;color:#fff;
font-size:.8rem;font-weight:600}.strip{display:flex;flex-wrap:wrap;gap:3px}.strip a{width:14px;
height:22px;border-radius:2px;display:block}.bar{height:14px;border-radius:2px;min-width:2px}
.wf{position:relative;height:14px;background:#ecece8;border-radius:2px}.wf span{position:absolute;
top:0;height:14px;border-radius:2px}.error{background:#fde8ea;border-left:4px solid #c0182c;
padding:8px 10px;overflow-wrap:anywhere}img.shot{max-width:100%;border:1px solid #ccc}
.muted{color:#666;font-size:.85rem}.scroll{overflow-x:auto}code{overflow-wrap:anywhere}
pre{white-space:pre-wrap;overflow-wrap:anywhere;font-size:.8rem}
@media (max-width:640px){td,th{padding:5px 4px;font-size:.85rem}.wide{display:none}}
"""


def layout(title: str, body: str) -> web.Response:
    """A whole page around a body."""
    document = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<link rel="icon" href="data:,">'
        f"<title>{html.escape(title)} · Parcours</title><style>{STYLE}</style></head><body>"
        '<header><a href="/status">Parcours</a> · status</header>'
        f"<main>{body}</main></body></html>"
    )
    return web.Response(text=document, content_type="text/html")


def badge(status: str) -> str:
    """A coloured status word."""
    colour = STATUS_COLOURS.get(status, "#6b7280")
    return f'<span class="badge" style="background:{colour}">{html.escape(status)}</span>'


def ago(when: float, now: float) -> str:
    """``42 s ago``, ``5 min ago``, ``3 h ago``."""
    seconds = max(0, now - when)
    if seconds < 120:
        return f"{seconds:.0f} s ago"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min ago"
    return f"{seconds / 3600:.1f} h ago"


def seconds(value: object) -> str:
    """A duration for a table cell; an em dash for a measure that was not taken."""
    if not isinstance(value, int | float):
        return "—"
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"


def journey_href(journey: str) -> str:
    """Link to a journey's page."""
    return f"/status/journeys/{quote(journey, safe='')}"


def run_href(run_id: str) -> str:
    """Link to a run's page."""
    return f"/status/runs/{quote(run_id, safe='')}"


def overview(
    rows: Iterable[dict[str, Any]], availability: dict[tuple[str, str, str], float], now: float
) -> web.Response:
    """Every journey on every device and location, worst first."""
    order = {"failed": 0, "degraded": 1, "passed": 2}
    ranked = sorted(rows, key=lambda r: (order.get(r["status"], 3), r["journey"]))
    cells = []
    for run in ranked:
        key = (run["journey"], run["location"], run["device"])
        ratio = availability.get(key)
        cells.append(
            f'<tr><td><a href="{journey_href(run["journey"])}">{html.escape(run["journey"])}</a>'
            f"</td><td>{badge(run['status'])}</td><td>{html.escape(run['device'])}</td>"
            f'<td class="wide">{html.escape(run["location"])}</td>'
            f'<td><a href="{run_href(run["run_id"])}">{ago(run["started_at"], now)}</a></td>'
            f"<td>{'—' if ratio is None else f'{ratio * 100:.1f} %'}</td></tr>"
        )
    table = (
        "<table><tr><th>Journey</th><th>Now</th><th>Device</th><th class=wide>Location</th>"
        "<th>Last run</th><th>24 h</th></tr>" + "".join(cells) + "</table>"
        if cells
        else "<p>No run reported yet.</p>"
    )
    failing = sum(1 for r in ranked if r["status"] == "failed")
    summary = f"{failing} failing" if failing else "All journeys work"
    return layout("Overview", f"<h1>{summary}</h1>{table}")


def journey_page(journey: str, runs: list[dict[str, Any]], now: float) -> web.Response:
    """Recent runs per device and location, and the latest run's steps and budgets."""
    series: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for run in runs:
        series.setdefault((run["location"], run["device"]), []).append(run)
    parts = [f"<h1>{html.escape(journey)}</h1>"]
    if not runs:
        parts.append("<p>No run of this journey is stored.</p>")
    for (location, device), recent in sorted(series.items()):
        latest = recent[0]
        strip = "".join(
            f'<a href="{run_href(r["run_id"])}" title="{html.escape(r["status"])} '
            f'{ago(r["started_at"], now)}" aria-label="{html.escape(r["status"])} run" '
            f'style="background:{STATUS_COLOURS.get(r["status"], "#6b7280")}"></a>'
            for r in reversed(recent[:40])
        )
        longest = max((s["duration_seconds"] for s in latest["steps"]), default=0) or 1
        steps = "".join(
            f"<tr><td>{html.escape(s['name'])}</td><td>{badge(s['status'])}</td>"
            f"<td>{seconds(s['duration_seconds'])}</td><td class=wide style='width:40%'>"
            f"<div class=bar style='width:{100 * s['duration_seconds'] / longest:.0f}%;"
            f"background:{STATUS_COLOURS.get(s['status'])}'></div></td></tr>"
            for s in latest["steps"]
        )
        budgets = "".join(
            f"<li>{html.escape(b['measure'])} {b['value']:.3g} over {html.escape(b['level'])} "
            f"budget {b['limit']:.3g}{' at ' + html.escape(b['step']) if b.get('step') else ''}"
            "</li>"
            for b in latest.get("budgets", [])
        )
        parts.append(
            f"<h2>{html.escape(device)} · {html.escape(location)} {badge(latest['status'])}</h2>"
            f'<div class="strip">{strip}</div><p class="muted">Last {min(len(recent), 40)} runs, '
            f'oldest first. <a href="{run_href(latest["run_id"])}">Latest run</a></p>'
            f"<table><tr><th>Step</th><th>Status</th><th>Time</th><th class=wide></th></tr>"
            f"{steps}</table>" + (f"<p>Budgets exceeded:</p><ul>{budgets}</ul>" if budgets else "")
        )
    return layout(journey, "".join(parts))


def run_page(run: dict[str, Any], artifacts: list[str], now: float) -> web.Response:
    """One run: what failed, a waterfall of steps, page timings and the evidence."""
    run_id = run["run_id"]
    total = max(run["finished_at"] - run["started_at"], 0.001)
    parts = [
        f"<h1>{html.escape(run['journey'])} {badge(run['status'])}</h1>",
        f'<p class="muted">{html.escape(run["device"])} · {html.escape(run["location"])} · '
        f"agent {html.escape(run['agent'])} · {ago(run['started_at'], now)} · "
        f"{seconds(total)} · {html.escape(run.get('kind', 'browser'))}"
        f"{_clicks(run)} · attempt "
        f'{run.get("attempt", 1)} · <a href="{journey_href(run["journey"])}">journey</a></p>',
    ]
    if run.get("error_message"):
        parts.append(
            f'<div class="error"><strong>{html.escape(str(run.get("error_type") or ""))}</strong>'
            f"{' at step ' + html.escape(run['failed_step']) if run.get('failed_step') else ''}"
            f": {html.escape(run['error_message'])}</div>"
        )
    shots = [name for name in artifacts if name.endswith(".png")]
    for name in shots:
        src = f"/runs/{quote(run_id, safe='')}/artifacts/{name}"
        parts.append(
            f'<h2>What the customer saw</h2><a href="{src}"><img class="shot" '
            f'src="{src}" alt="Screenshot {html.escape(name)}"></a>'
        )
    links = [
        f'<a href="/runs/{quote(run_id, safe="")}/artifacts/{name}">{label}</a>'
        for name, label in (
            (n, "page HTML" if n.endswith(".html") else "Playwright trace")
            for n in artifacts
            if not n.endswith(".png")
        )
    ]
    if links:
        parts.append(f"<p>Evidence: {' · '.join(links)}</p>")
    parts.append(_waterfall(run, run["steps"], total, "Steps"))
    browser = _browser_section(run)
    if browser and browser.get("captures"):
        parts.append(
            "<h2>Captured</h2><ul>"
            + "".join(
                f"<li>{html.escape(name)}: <code>{html.escape(str(value))}</code></li>"
                for name, value in browser["captures"].items()
            )
            + "</ul>"
        )
    if browser and browser.get("pages"):
        parts.append(_pages(browser["pages"]))
    if browser and browser.get("cleanup"):
        parts.append(_waterfall(run, browser["cleanup"], total, "Clean-up (not in the verdict)"))
    if run.get("exchanges"):
        parts.append(_exchanges(run))
    return layout(f"{run['journey']} run", "".join(parts))


def _browser_section(run: dict[str, Any]) -> dict[str, Any] | None:
    """Clicks and pages: a section since contract version 2, at the top in runs kept from 1."""
    section: dict[str, Any] | None = run.get("browser")
    return section if section is not None or "clicks" not in run else run


def _clicks(run: dict[str, Any]) -> str:
    browser = _browser_section(run)
    if browser is None:
        return ""
    return f" · clicks {browser['clicks']}/{browser['click_budget']}"


def _exchanges(run: dict[str, Any]) -> str:
    """Requests and connections of an API or TCP check: phases, status, TLS, assertions."""
    rows: list[str] = []
    details: list[str] = []
    for exchange in run["exchanges"]:
        phases = exchange.get("phases", {})
        tls = exchange.get("tls") or {}
        days = tls.get("days_left")
        rows.append(
            f"<tr><td>{html.escape(exchange['step'])}<div class=muted><code>"
            f"{html.escape((exchange.get('method') or '') + ' ' + exchange['url'][:120])}"
            f"</code></div></td><td>{html.escape(str(exchange.get('status') or '—'))}</td>"
            + "".join(
                f"<td class=wide>{seconds(phases.get(p))}</td>"
                for p in ("dns", "connect", "tls", "processing", "transfer")
            )
            + f"<td>{seconds(phases.get('total'))}</td>"
            f"<td class=wide>{'—' if days is None else f'{days:.0f} days'}</td></tr>"
        )
        details.extend(
            f"<li>{'✓' if a['passed'] else '✗'} {html.escape(a['message'])}</li>"
            for a in exchange.get("assertions", [])
        )
        for label, key in (("Request", "request_excerpt"), ("Response", "response_excerpt")):
            if exchange.get(key):
                details.append(
                    f"<li>{label} of {html.escape(exchange['step'])}:"
                    f"<pre>{html.escape(exchange[key])}</pre></li>"
                )
    table = (
        '<h2>Requests</h2><div class="scroll"><table><tr><th>Step</th><th>Status</th>'
        "<th class=wide>DNS</th><th class=wide>Connect</th><th class=wide>TLS</th>"
        "<th class=wide>Server</th><th class=wide>Transfer</th><th>Total</th>"
        "<th class=wide>Certificate</th></tr>" + "".join(rows) + "</table></div>"
    )
    return table + (
        f"<h2>Assertions and evidence</h2><ul>{''.join(details)}</ul>" if details else ""
    )


def _waterfall(run: dict[str, Any], steps: list[dict[str, Any]], total: float, heading: str) -> str:
    rows = []
    for step in steps:
        left = 100 * max(step["started_at"] - run["started_at"], 0) / total
        width = max(100 * step["duration_seconds"] / total, 0.5)
        colour = STATUS_COLOURS.get(step["status"], "#6b7280")
        message = html.escape(step.get("error_message") or "")
        rows.append(
            f"<tr><td>{html.escape(step['name'])}<div class=muted>{html.escape(step['action'])}"
            f"</div></td><td>{badge(step['status'])}</td><td>{seconds(step['duration_seconds'])}"
            f"</td><td style='width:45%'><div class=wf><span style='left:{left:.1f}%;"
            f"width:{min(width, 100 - left):.1f}%;background:{colour}'></span></div>"
            f"{'<div class=muted>' + message + '</div>' if message else ''}</td></tr>"
        )
    return (
        f"<h2>{html.escape(heading)}</h2><table class=fixed><tr><th>Step</th><th>Status</th>"
        "<th>Time</th><th>Waterfall</th></tr>" + "".join(rows) + "</table>"
    )


# Page measures in the run page's table (labels and units from the catalogue); the wide
# ones are hidden on a phone.
PAGE_COLUMNS = (
    ("ttfb_seconds", False),
    ("fcp_seconds", False),
    ("lcp_seconds", False),
    ("cls", True),
    ("load_seconds", True),
)


def _measure_cell(page: dict[str, Any], field: str, wide: bool) -> str:
    value = page.get(field)
    shown = (
        seconds(value)
        if MEASURES_BY_FIELD[field].unit == "seconds"
        else ("—" if value is None else format(value, ".3f"))
    )
    return f"<td{' class=wide' if wide else ''}>{shown}</td>"


def _pages(pages: list[dict[str, Any]]) -> str:
    rows, problems = [], []
    for page in pages:
        rows.append(
            f"<tr><td>{html.escape(page['step'])}<div class=muted><code>"
            f"{html.escape(page['url'][:120])}</code></div></td>"
            + "".join(_measure_cell(page, field, wide) for field, wide in PAGE_COLUMNS)
            + f"<td class=wide>{(page.get('transfer_bytes') or 0) / 1024:.0f} KiB · "
            f"{page.get('requests', 0)} req</td></tr>"
        )
        for failed in page.get("failed_requests", []):
            problems.append(
                f"<li>{html.escape(str(failed.get('status') or failed.get('error')))}"
                f" {html.escape(failed['method'])} <code>"
                f"{html.escape(failed['url'][:200])}</code></li>"
            )
        problems.extend(
            f"<li>JS: {html.escape(text)}</li>" for text in page.get("js_exceptions", [])
        )
        problems.extend(
            f"<li>JS (third party): {html.escape(text)}</li>"
            for text in page.get("third_party_js_exceptions", [])
        )
        problems.extend(
            f"<li>console: {html.escape(text)}</li>" for text in page.get("console_errors", [])
        )
    heads = "".join(
        f"<th{' class=wide' if wide else ''}>{MEASURES_BY_FIELD[field].label}</th>"
        for field, wide in PAGE_COLUMNS
    )
    table = (
        '<h2>Pages</h2><div class="scroll"><table><tr><th>Page</th>'
        + heads
        + "<th class=wide>Weight</th></tr>"
        + "".join(rows)
        + "</table></div>"
    )
    return table + (f"<h2>Errors on the pages</h2><ul>{''.join(problems)}</ul>" if problems else "")
