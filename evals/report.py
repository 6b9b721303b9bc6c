"""HTML report of one eval run: a plot per metric across configurations, the
baseline comparison, gate results, and every failure with what was expected and got."""

import base64
import html
import io
import json
from pathlib import Path
from typing import Any

from evals.gates import DESCRIPTIVE, Violation
from evals.medquad import ATTRIBUTION


def _plots(result: dict[str, Any]) -> list[tuple[str, str]]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    configs = result["configurations"]
    metrics = [
        m
        for m in dict.fromkeys(k for c in configs.values() for k in c)
        if m not in DESCRIPTIVE
        and all(isinstance(c.get(m, 0), int | float) for c in configs.values())
    ]
    images: list[tuple[str, str]] = []
    for metric in metrics:
        names = [n for n in configs if metric in configs[n]]
        values = [float(configs[n][metric]) for n in names]
        fig, ax = plt.subplots(figsize=(max(3.0, 1.1 * len(names) + 1.5), 2.6))
        bars = ax.bar(names, values, color="#4c72b0")
        ax.bar_label(bars, fmt="%.3g", fontsize=8)
        ax.set_title(metric, fontsize=10)
        ax.tick_params(axis="x", labelsize=8, rotation=15)
        ax.margins(y=0.2)
        fig.tight_layout()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=90)
        plt.close(fig)
        images.append((metric, base64.b64encode(buffer.getvalue()).decode()))
    return images


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict | list):
        return html.escape(json.dumps(value, ensure_ascii=False))
    return html.escape(str(value))


def _table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{_cell(r.get(c, ''))}</td>" for c in columns) + "</tr>" for r in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def write_html(
    result: dict[str, Any],
    path: Path,
    *,
    violations: list[Violation] | None = None,
    comparison: list[dict[str, Any]] | None = None,
) -> Path:
    title = f"canon eval {result['suite']} · {result['dataset']}" + (
        f" · {result['split']}" if result.get("split") else ""
    )
    configs = result["configurations"]
    metrics = list(dict.fromkeys(k for c in configs.values() for k in c))
    summary = _table(
        [{"configuration": n} | c for n, c in configs.items()], ["configuration", *metrics]
    )
    parts = [
        f"<h1>{html.escape(title)}</h1>",
        "<h2>Metrics</h2>",
        summary,
    ]
    for key in ("not_run", "corpus", "sweep", "notes"):
        if result.get(key):
            parts.append(f"<h3>{key}</h3><pre>{_cell(result[key])}</pre>")
    if violations is not None:
        parts.append("<h2>Gates</h2>")
        parts.append(
            "<p>all gates pass</p>"
            if not violations
            else "<ul>" + "".join(f"<li>{html.escape(str(v))}</li>" for v in violations) + "</ul>"
        )
    if comparison:
        parts.append("<h2>Against the baseline</h2>")
        parts.append(
            _table(comparison, ["configuration", "metric", "baseline", "now", "delta", "regressed"])
        )
    parts.append("<h2>Per configuration</h2>")
    parts.extend(
        f'<figure><img alt="{html.escape(m)}" src="data:image/png;base64,{img}"></figure>'
        for m, img in _plots(result)
    )
    failures = result.get("failures", [])
    parts.append(f"<h2>Failures ({len(failures)})</h2>")
    if failures:
        columns = list(dict.fromkeys(k for f in failures for k in f))
        parts.append(_table(failures, columns))
    if result["dataset"] == "medquad":
        parts.append(f"<footer><small>{html.escape(ATTRIBUTION)}</small></footer>")
    style = (
        "body{font-family:sans-serif;margin:2em;max-width:1400px}"
        "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;"
        "padding:3px 6px;vertical-align:top;text-align:left}figure{display:inline-block;margin:4px}"
    )
    page = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{style}</style></head><body>{''.join(parts)}</body></html>"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, "utf-8")
    return path
