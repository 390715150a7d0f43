"""Draw a :class:`ReportData` as one self-contained HTML file (plotly.js inlined, no network requests).

Every piece of user text (config labels, eval-set names, bundle texts, paths, guardrail messages) is
HTML-escaped before it reaches the page or a figure; figures travel as JSON inside
``<script type="application/json">`` with ``<``, ``>`` and ``&`` written as unicode escapes.

The page's Content-Security-Policy is a second line of defence: it names the SHA-256 of each of the
page's own two scripts (plotly.js and the few lines that draw the figures), so a script or an event
handler that got into the page some other way does not run, and it allows no request at all.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import math
from typing import Any

import plotly.graph_objects as go
from plotly.offline import get_plotlyjs
from plotly.utils import PlotlyJSONEncoder

from crucible_ray.reporting._compute import ReportData

_CSS = """
body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1200px}
h1{font-size:22px}h2{font-size:17px;margin-top:28px;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ddd;padding:3px 8px;text-align:left}
pre{background:#f6f6f6;padding:8px;font-size:12px;overflow:auto;max-height:420px}
.fig{min-height:380px}.note{color:#666;font-size:13px}
"""


def esc(text: object) -> str:
    """User text made safe for HTML and for plotly labels."""
    return html.escape(str(text), quote=True)


def figures(data: ReportData) -> dict[str, go.Figure]:
    """Every figure of the report, keyed by its element id."""
    figs: dict[str, go.Figure] = {"pareto": _pareto(data)}
    for h in data.heatmaps:
        figs[f"heatmap-{h.objective}"] = go.Figure(
            go.Heatmap(
                z=[[None if math.isnan(v) else v for v in row] for row in h.values],
                x=[str(s) for s in h.steps],
                y=[esc(r) for r in h.ratios],
                colorscale="Viridis",
                texttemplate="%{z:.3f}",
                colorbar={"title": h.objective},
            ),
            layout={
                "title": f"{h.objective} (seed mean) by ratio x steps",
                "xaxis_title": "steps",
                "yaxis_title": esc(f"ratio ({'_'.join(h.pools)})" if h.pools else "ratio"),
                "xaxis_type": "category",
            },
        )
    curves = go.Figure(
        layout={
            "title": "generalization along steps (peak = recommended early stop)",
            "xaxis_title": "step",
            "yaxis_title": "generalization",
        }
    )
    for c in data.curves:
        curves.add_trace(go.Scatter(x=c.steps, y=c.generalization, mode="lines+markers", name=esc(c.ratio)))
        i = c.steps.index(c.peak_step)
        curves.add_trace(
            go.Scatter(
                x=[c.peak_step],
                y=[c.generalization[i]],
                mode="markers",
                showlegend=False,
                marker={"symbol": "star", "size": 14},
                name=f"{esc(c.ratio)} peak",
            )
        )
    figs["curves"] = curves
    if data.margins:
        box = go.Figure(
            layout={
                "title": f"margin distributions of the recommended config ({esc(data.recommended)})",
                "yaxis_title": "positive - hardest negative",
            }
        )
        for m in data.margins:
            box.add_trace(
                go.Box(
                    name=f"{esc(m.eval_set)} tier {esc(m.tier)}",
                    q1=[m.quantiles["p25"]],
                    median=[m.quantiles["p50"]],
                    q3=[m.quantiles["p75"]],
                    lowerfence=[m.quantiles["p5"]],
                    upperfence=[m.quantiles["p95"]],
                    mean=[m.mean],
                )
            )
        figs["margins"] = box
    for k, mrun in enumerate(data.mining):
        figs[f"funnel-{k}"] = go.Figure(
            go.Funnel(y=[esc(s) for s in mrun.funnel], x=list(mrun.funnel.values())),
            layout={"title": f"mining funnel: {esc(mrun.name)}"},
        )
        figs[f"passes-{k}"] = go.Figure(
            go.Bar(x=[str(p) for p in mrun.histogram], y=list(mrun.histogram.values())),
            layout={
                "title": f"pass-count histogram: {esc(mrun.name)} (of {mrun.lineups} lineups)",
                "xaxis_title": "lineups survived",
                "yaxis_title": "candidates",
                "xaxis_type": "category",
            },
        )
    return figs


def _pareto(data: ReportData) -> go.Figure:
    fig = go.Figure(
        layout={
            "title": "retention vs generalization (seed means, 95% intervals)",
            "xaxis_title": "retention",
            "yaxis_title": "generalization",
        }
    )
    groups = [("on the frontier", lambda r: r["on_frontier"]), ("dominated", lambda r: not r["on_frontier"])]
    for name, keep in groups:
        rows = [r for r in data.pareto_rows if keep(r)]
        fig.add_trace(
            _points(
                rows, mode="markers", name=name, error_x=_err(rows, "retention"), error_y=_err(rows, "generalization")
            )
        )
    front = sorted((r for r in data.pareto_rows if r["on_frontier"]), key=lambda r: r["retention_mean"])
    fig.add_trace(_points(front, labels=False, mode="lines", name="frontier", line={"dash": "dot"}))
    for flag, symbol, label in (("recommended", "star", "recommended"), ("is_baseline", "diamond", "baseline")):
        rows = [r for r in data.pareto_rows if r.get(flag)]
        fig.add_trace(
            _points(rows, mode="markers", name=label, marker={"symbol": symbol, "size": 16, "line": {"width": 1}})
        )
    return fig


def _points(rows: list[dict[str, Any]], *, labels: bool = True, **style: Any) -> go.Scatter:
    """Pareto rows as a retention x generalization trace (seed means), labelled by config unless ``labels=False``."""
    text = [esc(r["config"]) for r in rows] if labels else None
    return go.Scatter(
        x=[r["retention_mean"] for r in rows], y=[r["generalization_mean"] for r in rows], text=text, **style
    )


def _err(rows: list[dict[str, Any]], obj: str) -> dict[str, Any]:
    def gap(r: dict[str, Any], a: str, b: str) -> float:
        x, y = r.get(a), r.get(b)
        if x is None or y is None or math.isnan(x) or math.isnan(y):
            return 0.0  # one seed: no interval
        return abs(float(x) - float(y))

    return {
        "type": "data",
        "symmetric": False,
        "array": [gap(r, f"{obj}_ci_high", f"{obj}_mean") for r in rows],
        "arrayminus": [gap(r, f"{obj}_mean", f"{obj}_ci_low") for r in rows],
    }


def _json_for_script(fig: go.Figure) -> str:
    text = json.dumps(fig.to_plotly_json(), cls=PlotlyJSONEncoder)
    return text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")


# Draws every figure from its JSON data block; the only inline code of the page besides plotly.js.
_DRAW = (
    "for (const el of document.querySelectorAll('script[id^=\"data-\"]')) {"
    "const f = JSON.parse(el.textContent); const id = el.id.slice(5);"
    "Plotly.newPlot(id, f.data, f.layout, {displaylogo: false, responsive: true});}"
)


def script_hash(code: str) -> str:
    """The CSP source expression that allows exactly the inline script ``<script>code</script>``."""
    return "'sha256-" + base64.b64encode(hashlib.sha256(code.encode("utf-8")).digest()).decode("ascii") + "'"


def content_security_policy(*scripts: str) -> str:
    """The page's policy: nothing fetched, no form sent, no ``<base>``; only ``scripts`` run.

    Styles stay ``'unsafe-inline'``: plotly.js sets inline ``style`` attributes while it draws, and with
    every fetch refused (``default-src 'none'``, images and fonts only as ``data:``) injected CSS could
    change how the page looks but neither run code nor send anything out.
    """
    return (
        "default-src 'none'; "
        f"script-src {' '.join(script_hash(s) for s in scripts)}; "
        "style-src 'unsafe-inline'; img-src data:; font-src data:; base-uri 'none'; form-action 'none'"
    )


def render_html(data: ReportData) -> str:
    """The whole page as a string."""
    figs = figures(data)
    plotly_js = get_plotlyjs()
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<meta http-equiv='Content-Security-Policy' content=\"{content_security_policy(plotly_js, _DRAW)}\">",
        f"<title>{esc(data.title)}</title>",
        f"<style>{_CSS}</style><script>{plotly_js}</script></head><body>",
        f"<h1>{esc(data.title)}</h1>",
        f"<p>Recommended: <b>{esc(data.recommended)}</b>. Baseline: {esc(', '.join(data.baseline))}. "
        f"Hypervolume vs (0, 0): {data.hypervolume:.4f}.</p>",
    ]
    if data.findings:  # at the top: what the sweep measured, each with its 95% interval across seeds
        parts.append("<h2>Findings</h2><ul class='findings'>")
        parts += [f"<li>{esc(line)}</li>" for line in data.findings]
        parts.append("</ul>")
    sections = [
        ("Pareto: retention vs generalization", ["pareto"]),
        ("Ratio x steps", [k for k in figs if k.startswith("heatmap-")]),
        ("Step curves", ["curves"]),
        ("Margins", [k for k in figs if k == "margins"]),
        ("Mining", [k for k in figs if k.startswith(("funnel-", "passes-"))]),
    ]
    for title, ids in sections:
        parts.append(f"<h2>{esc(title)}</h2>")
        if not ids:
            parts.append("<p class='note'>nothing to show (no such outputs in this run)</p>")
        parts += [f"<div class='fig' id='{i}'></div>" for i in ids]
    parts.append("<h2>Pareto table</h2>" + _pareto_table(data))
    parts.append("<h2>Guardrails</h2>" + _guardrail_table(data.guardrails))
    if data.examples:
        parts.append("<h2>Accepted organic killers (highest pass counts)</h2>" + _examples(data.examples))
    parts.append(f"<h2>Run manifest</h2><pre>{esc(json.dumps(data.manifest, indent=2, default=str))}</pre>")
    for i, fig in figs.items():
        parts.append(f"<script type='application/json' id='data-{i}'>{_json_for_script(fig)}</script>")
    parts.append(f"<script>{_DRAW}</script>")
    parts.append("</body></html>")
    return "\n".join(parts)


def _table(head: list[str], rows: list[list[object]]) -> str:
    th = "".join(f"<th>{esc(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><tr>{th}</tr>{body}</table>"


def _fmt(v: object) -> str:
    return (
        "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.3f}" if isinstance(v, float) else str(v)
    )


def _pareto_table(data: ReportData) -> str:
    rows = [
        [
            r["config"],
            r["n_seeds"],
            _fmt(r["retention_mean"]),
            _fmt(r["generalization_mean"]),
            "yes" if r["on_frontier"] else "",
            _fmt(r["frontier_probability"]),
            "baseline" if r["is_baseline"] else _fmt(r.get("generalization_delta")),
        ]
        for r in sorted(data.pareto_rows, key=lambda r: -r["frontier_probability"])
    ]
    return _table(
        ["config", "seeds", "retention", "generalization", "frontier", "P(frontier)", "generalization vs baseline"],
        rows,
    )


def _guardrail_table(doc: dict[str, Any] | None) -> str:
    if not doc:
        return "<p class='note'>no guardrail results</p>"
    rows = [[v["check"], v["subject"], v["message"]] for v in doc.get("violations", [])]
    stops = ", ".join(f"{k}: step {v}" for k, v in sorted(doc.get("early_stop", {}).items()))
    head = f"<p>mode {esc(doc.get('mode'))}, status <b>{esc(doc.get('status'))}</b>; early stop: {esc(stops)}</p>"
    return head + (_table(["check", "subject", "finding"], rows) if rows else "<p>no violation</p>")


def _examples(examples: list[dict[str, Any]]) -> str:
    rows = [[e["anchor"], e["positive"], " | ".join(e["killers"]), e["pass_count"]] for e in examples]
    return _table(["anchor", "positive", "killers (tier 3)", "pass count"], rows)
