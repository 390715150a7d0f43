"""The report in a real browser (Debian's headless Chromium): every figure drawn, no console error,
no request from the page, hostile bundle text shown as text. CI installs chromium (make setup)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from test_report import HOSTILE, make_sweep_dir

from crucible_ray.reporting import compute_report, figures, render_html
from crucible_ray.reporting._browser import open_page

pytestmark = pytest.mark.slow


def _figure_divs(dom: str) -> dict[str, str]:
    """Each figure div's markup, by id (up to the next figure div)."""
    starts = [(m.start(), m.group(1)) for m in re.finditer(r'<div class="fig[^"]*" id="([^"]+)"', dom)]
    ends = [s for s, _ in starts[1:]] + [len(dom)]
    return {fid: dom[s:e] for (s, fid), e in zip(starts, ends, strict=True)}


def test_every_figure_renders_offline_without_errors(tmp_path: Path, synthetic_world: Path) -> None:
    d = make_sweep_dir(tmp_path, synthetic_world)
    data = compute_report(d, n_bootstrap=20)
    page = tmp_path / "dashboard.html"
    page.write_text(render_html(data), encoding="utf-8")
    run = open_page(page, screenshot=tmp_path / "shot.png")
    assert run.console == [], run.console  # a CSP refusal would be a console line too (test below)
    assert run.requests == []
    divs = _figure_divs(run.dom)
    assert set(divs) == set(figures(data))
    for fid, markup in divs.items():
        assert "js-plotly-plot" in markup, f"{fid} was not drawn"
        widths = [float(w) for w in re.findall(r'<svg class="main-svg"[^>]* width="([\d.]+)"', markup)]
        assert widths and max(widths) > 100, fid
        assert re.search(r'class="(trace|heatmaplayer|funnellayer|barlayer|boxlayer)', markup) or "<path" in markup, fid
    # The hostile anchor of an organic bundle is text on the page, never an element.
    assert "&lt;img src=x onerror=alert(1)&gt;" in run.dom
    assert '<img src="x"' not in run.dom and HOSTILE not in run.dom
    assert (tmp_path / "shot.png").stat().st_size > 10_000


def test_the_csp_stops_script_that_got_into_the_page(tmp_path: Path, synthetic_world: Path) -> None:
    # Escaping keeps user text out of the markup; if some text got through anyway, the page's CSP (script
    # hashes, no 'unsafe-inline') still stops an inline script, an event handler and a javascript: URL.
    d = make_sweep_dir(tmp_path, synthetic_world)
    data = compute_report(d, n_bootstrap=20)
    injected = (
        "<script>document.body.setAttribute('data-ran', 'script')</script>"
        "<img src='x' onerror=\"document.body.setAttribute('data-ran', 'handler')\">"
        "<svg onload=\"document.body.setAttribute('data-ran', 'svg')\"></svg>"
        "<iframe src=\"javascript:parent.document.body.setAttribute('data-ran', 'url')\"></iframe>"
    )
    html = render_html(data).replace("<h1>", injected + "<h1>", 1)
    page = tmp_path / "injected.html"
    page.write_text(html, encoding="utf-8")
    run = open_page(page)
    assert 'data-ran="' not in run.dom  # the attribute any of them would have set
    refused = [line for line in run.console if "Content Security Policy" in line]
    assert len(refused) >= 3, run.console  # the script, the handlers: each refusal is reported
    assert [line for line in run.console if "Content Security Policy" not in line] == []
    # The page's own scripts still ran: every figure is drawn.
    divs = _figure_divs(run.dom)
    assert set(divs) == set(figures(data)) and all("js-plotly-plot" in m for m in divs.values())


def test_the_harness_sees_requests_and_console_errors(tmp_path: Path) -> None:
    # The checks above could fail: a page that fetches and logs an error is caught.
    bad = tmp_path / "bad.html"
    bad.write_text(
        "<html><body><img src='https://example.com/x.png'><script>console.error('boom')</script></body></html>"
    )
    run = open_page(bad)
    assert run.requests == ["https://example.com/x.png"]
    assert any("boom" in line for line in run.console)
