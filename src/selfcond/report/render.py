"""report.html as a string: the header, config, metrics table, plots, mode x label table and
samples of a run, with inline CSS and the plots and images as base64 PNG data URIs, so the file
opens in any browser without a server and references nothing outside itself. A tiny inline script
records how many images loaded in `body[data-images-loaded]` ("3/3"), which the browser test reads.
"""

from __future__ import annotations

import base64
import datetime
import html
import json
from pathlib import Path

import numpy as np

from selfcond.data import spec
from selfcond.errors import UserError
from selfcond.report.read import (RunFiles, by_step, live_rows, mode_x_label, number, pi_rows, read_run, series,
                                  step_of)
from selfcond.viz import plots

HEATMAP_ROWS = 40  # modes drawn in the mode x label heatmap (the HTML table has all live modes)

CSS = """
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;margin:0;
 padding:16px 24px;color:#222;background:#fafafa}
h1{font-size:20px;margin:0 0 4px}h2{font-size:16px;margin:20px 0 8px;border-bottom:1px solid #ddd}
.meta{color:#555}.meta b{color:#222}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(520px,1fr));gap:12px}
figure{margin:0;background:#fff;border:1px solid #e3e3e3;border-radius:4px;padding:8px}
figcaption{font-size:12px;color:#555;margin-top:4px}
img{max-width:100%;height:auto;display:block}
img.pixels{width:100%;image-rendering:pixelated}
table{border-collapse:collapse;font-size:12px;background:#fff}
th,td{border:1px solid #e3e3e3;padding:2px 6px;text-align:right;font-variant-numeric:tabular-nums}
th{background:#f0f0f0}td.max{background:#ffd98a;font-weight:bold}
#mode-x-label td,#mode-x-label th{padding:1px 4px}
.scroll{max-height:420px;overflow:auto;display:inline-block;max-width:100%}
pre{background:#fff;border:1px solid #e3e3e3;padding:8px;font-size:12px;overflow:auto}
.none{color:#888;font-style:italic}
"""

SCRIPT = """
window.addEventListener("load", function () {
  var imgs = document.images, ok = 0;
  for (var i = 0; i < imgs.length; i++) {
    if (imgs[i].complete && imgs[i].naturalWidth > 0) ok++;
  }
  document.body.dataset.imagesLoaded = ok + "/" + imgs.length;
});
"""


def _e(value) -> str:
    return html.escape(str(value), quote=True)


def _data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _cell(value) -> str:
    if isinstance(value, bool) or value is None or isinstance(value, (int, str)):
        return _e(value)
    if isinstance(value, float):
        return _e(f"{value:.4g}")
    text = json.dumps(value)
    return _e(text if len(text) <= 60 else text[:57] + "...")


def _metrics_table(metrics: list[dict]) -> str:
    if not metrics:
        return '<p class="none">no metrics yet</p>'
    keys = ["step"]
    for record in metrics:
        keys += [k for k in record if k not in keys]
    head = "".join(f"<th>{_e(k)}</th>" for k in keys)
    body = "".join("<tr>" + "".join(f"<td>{_cell(r[k]) if k in r else ''}</td>" for k in keys) + "</tr>"
                   for r in metrics)
    return f'<div class="scroll"><table id="metrics"><tr>{head}</tr>{body}</table></div>'


def _mode_table(latest: dict, table: list[list[int]]) -> str:
    pi = latest.get("pi") if isinstance(latest.get("pi"), list) else []
    ncls = len(table[0])
    head = "<th>mode</th><th>π</th><th>images</th>" + "".join(f"<th>{c}</th>" for c in range(ncls))
    head += "<th>purity</th>"
    body = []
    for m in live_rows(latest, table):
        row = table[m]
        best, total = max(row), sum(row)
        p = number(pi[m]) if m < len(pi) else None
        cells = "".join(f'<td class="max">{v}</td>' if v == best else f"<td>{v}</td>" for v in row)
        body.append(f"<tr><th>{m}</th><td>{'' if p is None else f'{p:.3f}'}</td><td>{total}</td>"
                    f"{cells}<td>{best / total:.2f}</td></tr>")
    return f'<div class="scroll"><table id="mode-x-label"><tr>{head}</tr>{"".join(body)}</table></div>'


def _figure_html(png: bytes | None, name: str, caption: str = "", cls: str = "plot") -> str:
    if png is None:
        return ""
    cap = f"<figcaption>{_e(caption)}</figcaption>" if caption else ""
    return (f'<figure><img class="{cls}" data-plot="{_e(name)}" alt="{_e(name)}" '
            f'src="{_data_uri(png)}">{cap}</figure>')


def mode_label_heatmap(info: dict, table: list[list[int]]) -> bytes | None:
    rows = live_rows(info, table)[:HEATMAP_ROWS]
    return plots.mode_label_png(rows, np.array([table[m] for m in rows], dtype=float))


def _plots(run: RunFiles) -> list[str]:
    xs, ys = series(run.stats, "modes_alive")
    if not xs:
        xs, ys = series(run.history, "modes_alive")
    records = [r for r in run.metrics if step_of(r) is not None]
    keys = []
    for record in records:
        keys += [k for k, v in record.items() if k != "step" and k not in keys and number(v) is not None]
    train = by_step([r for r in records if "source" not in r])
    other = [r for r in records if "source" in r]
    panels = {key: (series(train, key), series(other, key)) for key in keys}
    pngs = [(plots.losses_png({key: series(run.stats, key) for key in ("loss_d", "loss_g")}), "losses"),
            (plots.modes_alive_png(xs, ys), "modes"), (plots.pi_png(*pi_rows(run.history)), "pi"),
            (plots.metrics_png(panels), "metrics")]
    return [_figure_html(png, name) for png, name in pngs if png is not None]


def _points(run: RunFiles) -> bool:
    name = run.option("data", "name")
    try:
        return isinstance(name, str) and spec(name).kind == "points"
    except UserError:
        return False


def render_report(run_dir: str | Path, mode_label: bytes | None = None) -> str:
    """The report of `run_dir` as an HTML string (what `write_report` writes). `mode_label`: the
    heatmap of the newest modes record, when the caller has drawn it already (a snapshot has)."""
    run_dir = Path(run_dir)
    run = read_run(run_dir)
    latest = run.history[-1] if run.history else None
    steps = [r["step"] for r in run.stats + run.history] + [s for r in run.metrics if (s := step_of(r)) is not None]
    if run.fakes:
        steps.append(run.fakes[0])
    step = max(steps, default=0)
    total = run.option("train", "steps")
    now = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    speed = number(run.stats[-1].get("steps_per_s")) if run.stats else None

    meta = [f"method <b>{_e(run.option('method', 'name') or '?')}</b>",
            f"data <b>{_e(run.option('data', 'name') or '?')}</b>",
            f"step <b>{step}</b>" + (f" / {_e(total)}" if isinstance(total, int) else "")]
    newest = max(run.stats[-1:] + run.history[-1:], key=lambda r: r["step"], default={})
    if number(newest.get("modes_alive")) is not None:
        meta.append(f"modes alive <b>{_e(newest['modes_alive'])}</b>")
    if speed is not None:
        meta.append(f"{speed:.1f} steps/s")
    meta.append(f"written {_e(now)}")

    table = mode_x_label(latest)
    figures = _plots(run)
    samples = []
    cls = "samples" if _points(run) else "samples pixels"
    if run.fakes_png is not None:
        samples.append(_figure_html(run.fakes_png, "fakes", f"generated, step {run.fakes[0]} ({run.fakes[1].name})"
                                    + ("; one row per mode, modes sorted by π" if run.reals_png else ""),
                                    cls=cls))
    if run.reals_png is not None:
        samples.append(_figure_html(run.reals_png, "reals", "real images of the same modes (reals.png)", cls=cls))
    title = _e(run_dir.resolve().name)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{title}: selfcond report</title>",
        f"<style>{CSS}</style></head><body>",
        f"<h1>{title}</h1>",
        f'<div class="meta">{" &middot; ".join(meta)}</div>',
        "<details><summary>config.yaml</summary>",
        f"<pre>{_e(run.config_text) if run.config_text else 'no config.yaml'}</pre></details>",
        "<h2>Metrics</h2>", _metrics_table(run.metrics),
        "<h2>Plots</h2>",
        f'<div class="grid">{"".join(figures)}</div>' if figures else '<p class="none">no statistics yet</p>',
    ]
    if table is not None:
        parts += [f"<h2>Modes x true labels (step {_e(latest.get('step'))})</h2>",
                  '<div class="grid">',
                  _figure_html(mode_label or mode_label_heatmap(latest, table), "mode_x_label"),
                  f"<div>{_mode_table(latest, table)}</div></div>"]
    parts += ["<h2>Samples</h2>",
              f'<div class="grid">{"".join(samples)}</div>' if samples else '<p class="none">no samples yet</p>']
    if run.log_lines:
        parts += ["<details><summary>log.txt (last lines)</summary>",
                  f"<pre>{_e(chr(10).join(run.log_lines))}</pre></details>"]
    parts += [f"<script>{SCRIPT}</script>", "</body></html>", ""]
    return "\n".join(parts)
