"""report.html: one static page per run, rewritten at each snapshot.

The page shows what the run directory holds so far: a header (run, method, data, step, date), the
resolved config, the metrics table, plots (losses, modes alive, π over time, metrics, the mode x label
table when true labels exist) and the latest sample grid beside reals.png. Plots are drawn with
matplotlib's Agg canvas and embedded with the images as base64 PNG data URIs: the file opens in any
browser without a server and references nothing outside itself.

A run that has just started, an unconditional method (no modes files) or a JSON line cut short while
being written all render: missing or unreadable inputs are left out of the page, nothing else is
caught. A tiny inline script records how many images loaded in `body[data-images-loaded]` ("3/3"),
which the browser test reads.
"""

from __future__ import annotations

import base64
import datetime
import html
import io
import json
import math
import re
from pathlib import Path

import numpy as np
import yaml

from selfcond.config import TOY_DATASETS
from selfcond.atomic import atomic_write

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
FAKES_RE = re.compile(r"^fakes_(\d+)\.png$")
PI_TOP = 20  # modes drawn one by one in the π plot; the others are summed into "other"
HEATMAP_ROWS = 40  # modes drawn in the mode x label heatmap (the HTML table has all live modes)
DPI = 100

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


# --- reading the run directory: missing or unreadable inputs are skipped ------------------------


def _read_bytes(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except (FileNotFoundError, IsADirectoryError, PermissionError):
        return None


def _read_jsonl(path: Path) -> list[dict]:
    """The records of a JSON-lines file; lines that do not parse (e.g. the last one, cut short
    while being written) and lines that are not objects are skipped."""
    data = _read_bytes(path)
    records = []
    for line in (data or b"").splitlines():
        try:
            record = json.loads(line)
        except ValueError:  # JSONDecodeError and UnicodeDecodeError
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


def _read_json(path: Path) -> dict | None:
    data = _read_bytes(path)
    try:
        record = json.loads(data) if data else None
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


def _number(value) -> float | None:
    """A finite float, or None for anything else (strings, bools, NaN, missing)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def _step(record: dict) -> int | None:
    step = record.get("step")
    return step if isinstance(step, int) and not isinstance(step, bool) else None


def _by_step(records: list[dict]) -> list[dict]:
    """Records with an integer step, one per step (the last one written wins, as after a resume),
    sorted by step."""
    out = {}
    for record in records:
        if (step := _step(record)) is not None:
            out[step] = record
    return [out[s] for s in sorted(out)]


def _series(records: list[dict], key: str) -> tuple[list[int], list[float]]:
    xs, ys = [], []
    for record in records:
        if (y := _number(record.get(key))) is not None:
            xs.append(record["step"])
            ys.append(y)
    return xs, ys


def _png(path: Path) -> bytes | None:
    data = _read_bytes(path)
    return data if data and data.startswith(PNG_MAGIC) else None


def _latest_fakes(run_dir: Path) -> tuple[int, Path] | None:
    found = [(int(m.group(1)), p) for p in run_dir.iterdir() if (m := FAKES_RE.match(p.name))]
    return max(found) if found else None


# --- plots ---------------------------------------------------------------------------------------


def _figure(width: float, height: float):
    from matplotlib.figure import Figure  # no pyplot: no global state inside a training process

    return Figure(figsize=(width, height), dpi=DPI, layout="constrained")


def _to_png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)  # a bare Figure renders PNG with the Agg canvas
    return buf.getvalue()


def _plot_losses(stats: list[dict]) -> bytes | None:
    lines = [(key, *_series(stats, key)) for key in ("loss_d", "loss_g")]
    if not any(xs for _, xs, _ in lines):
        return None
    fig = _figure(5.6, 3.2)
    ax = fig.add_subplot()
    for key, xs, ys in lines:
        if xs:
            ax.plot(xs, ys, marker="." if len(xs) < 30 else None, lw=1.2, label=key)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title("losses (mean over each log interval)", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _to_png(fig)


def _plot_modes_alive(stats: list[dict], history: list[dict]) -> bytes | None:
    xs, ys = _series(stats, "modes_alive")
    if not xs:
        xs, ys = _series(history, "modes_alive")
    if not xs:
        return None
    fig = _figure(5.6, 3.2)
    ax = fig.add_subplot()
    ax.step(xs, ys, where="post", lw=1.4, marker="." if len(xs) < 30 else None)
    ax.set_xlabel("step")
    ax.set_ylabel("modes alive")
    ax.set_ylim(bottom=0, top=max(ys) * 1.1 + 1)
    ax.set_title("modes alive", fontsize=10)
    ax.grid(alpha=0.3)
    return _to_png(fig)


def _pi_rows(history: list[dict]) -> tuple[list[int], list[list[float]]]:
    steps, rows = [], []
    for record in history:
        pi = record.get("pi")
        if isinstance(pi, list) and pi and all(_number(p) is not None for p in pi):
            steps.append(record["step"])
            rows.append([float(p) for p in pi])
    return steps, rows


def _plot_pi(history: list[dict]) -> bytes | None:
    """Stacked area of π per mode over time: the PI_TOP largest modes of the latest π by
    themselves, the rest summed as "other"."""
    steps, rows = _pi_rows(history)
    if not steps:
        return None
    k = max(len(r) for r in rows)
    pi = np.zeros((len(rows), k))
    for i, r in enumerate(rows):
        pi[i, :len(r)] = r
    order = np.argsort(-pi[-1], kind="stable")
    order = [m for m in order if pi[:, m].any()]  # modes that never held any mass are left out
    top, rest = order[:PI_TOP], order[PI_TOP:]
    layers = [pi[:, m] for m in top]
    labels = [f"mode {m}" for m in top]
    if rest:
        layers.append(pi[:, rest].sum(axis=1))
        labels.append(f"other {len(rest)}")
    fig = _figure(5.6, 3.2)
    ax = fig.add_subplot()
    from matplotlib import colormaps

    cmap = colormaps["tab20"]
    colors = [cmap(i % 20) for i in range(len(top))] + (["0.75"] if rest else [])
    if len(steps) > 1:
        ax.stackplot(steps, *layers, labels=labels, colors=colors, linewidth=0.3, edgecolor="white")
        ax.set_xlim(steps[0], steps[-1])
    else:  # one snapshot so far: a single stacked bar
        bottom = 0.0
        for layer, label, color in zip(layers, labels, colors):
            ax.bar(steps, layer, bottom=bottom, width=max(steps[0], 1) * 0.2, label=label, color=color,
                   edgecolor="white", linewidth=0.3)
            bottom += layer
    ax.set_ylim(0, max(1.0, float(pi.sum(axis=1).max())))
    ax.set_xlabel("step")
    ax.set_ylabel("π")
    ax.set_title(f"π per mode over time ({len(order)} modes with mass)", fontsize=10)
    if len(labels) <= 12:
        ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    return _to_png(fig)


def _metric_keys(metrics: list[dict]) -> list[str]:
    keys = []
    for record in metrics:
        for key, value in record.items():
            if key != "step" and key not in keys and _number(value) is not None:
                keys.append(key)
    return keys


def _plot_metrics(metrics: list[dict]) -> bytes | None:
    """One small panel per numeric metric over steps (records from `selfcond evaluate` and other
    sources drawn as separate markers)."""
    records = [r for r in metrics if _step(r) is not None]
    keys = _metric_keys(records)
    if not keys:
        return None
    cols = min(3, len(keys))
    nrows = math.ceil(len(keys) / cols)
    fig = _figure(5.6, 1.0 + 1.6 * nrows)
    fig.suptitle("metrics at snapshots", fontsize=10)
    for i, key in enumerate(keys):
        ax = fig.add_subplot(nrows, cols, i + 1)
        train = _by_step([r for r in records if "source" not in r])
        xs, ys = _series(train, key)
        if xs:
            ax.plot(xs, ys, marker=".", lw=1.2)
        other = [r for r in records if "source" in r]
        xs, ys = _series(other, key)
        if xs:
            ax.plot(xs, ys, ls="none", marker="x", color="C3", label="evaluate")
        ax.set_title(key, fontsize=9)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    return _to_png(fig)


def _live_rows(latest: dict, table: list[list[int]]) -> list[int]:
    """Modes to show: those with any real images, sorted by π (largest first)."""
    pi = latest.get("pi") if isinstance(latest.get("pi"), list) else []

    def weight(m):
        return (_number(pi[m]) or 0.0) if m < len(pi) else 0.0

    rows = [m for m, row in enumerate(table) if sum(row) > 0]
    return sorted(rows, key=lambda m: (-weight(m), m))


def _mode_x_label(latest: dict | None) -> list[list[int]] | None:
    table = (latest or {}).get("mode_x_label")
    if (isinstance(table, list) and table and all(isinstance(r, list) and r for r in table)
            and all(_number(v) is not None for r in table for v in r)):
        width = max(len(r) for r in table)
        return [[int(v) for v in r] + [0] * (width - len(r)) for r in table]
    return None


def _plot_mode_x_label(latest: dict, table: list[list[int]]) -> bytes | None:
    rows = _live_rows(latest, table)[:HEATMAP_ROWS]
    if not rows:
        return None
    counts = np.array([table[m] for m in rows], dtype=float)
    share = counts / counts.sum(axis=1, keepdims=True)
    ncls = counts.shape[1]
    fig = _figure(5.6, min(1.4 + 0.22 * len(rows), 10))
    ax = fig.add_subplot()
    im = ax.imshow(share, cmap="Blues", vmin=0, vmax=1, aspect="auto", interpolation="nearest")
    ax.set_xticks(range(ncls))
    ax.set_yticks(range(len(rows)), [str(m) for m in rows])
    ax.tick_params(labelsize=7)
    ax.set_xlabel("true label")
    ax.set_ylabel("mode (by π)")
    ax.set_title("share of each mode's real images per label", fontsize=10)
    if counts.size <= 400:
        for (i, j), c in np.ndenumerate(counts):
            if c:
                ax.text(j, i, f"{int(c)}", ha="center", va="center", fontsize=6,
                        color="white" if share[i, j] > 0.6 else "black")
    fig.colorbar(im, ax=ax, shrink=0.8)
    return _to_png(fig)


def mode_label_png(info: dict) -> bytes | None:
    """The mode x true-label heatmap of a modes.json record, as PNG bytes; None without labels or with
    more than 50 classes (Stacked MNIST's 1000 labels do not make a readable picture)."""
    table = _mode_x_label(info)
    if table is None or len(table[0]) > 50:
        return None
    return _plot_mode_x_label(info, table)


# --- HTML ----------------------------------------------------------------------------------------


def _e(value) -> str:
    return html.escape(str(value), quote=True)


def _data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _cell(value) -> str:
    if isinstance(value, bool) or value is None:
        return _e(value)
    if isinstance(value, int):
        return _e(value)
    if isinstance(value, float):
        return _e(f"{value:.4g}")
    if isinstance(value, str):
        return _e(value)
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
    for m in _live_rows(latest, table):
        row = table[m]
        best, total = max(row), sum(row)
        p = _number(pi[m]) if m < len(pi) else None
        cells = "".join(f'<td class="max">{v}</td>' if v == best else f"<td>{v}</td>" for v in row)
        body.append(f"<tr><th>{m}</th><td>{'' if p is None else f'{p:.3f}'}</td><td>{total}</td>"
                    f"{cells}<td>{best / total:.2f}</td></tr>")
    return (f'<div class="scroll"><table id="mode-x-label"><tr>{head}</tr>{"".join(body)}</table></div>')


def _figure_html(png: bytes | None, name: str, caption: str = "", cls: str = "plot") -> str:
    if png is None:
        return ""
    cap = f"<figcaption>{_e(caption)}</figcaption>" if caption else ""
    return (f'<figure><img class="{cls}" data-plot="{_e(name)}" alt="{_e(name)}" '
            f'src="{_data_uri(png)}">{cap}</figure>')


def render_report(run_dir: str | Path, mode_label: bytes | None = None) -> str:
    """The report of `run_dir` as an HTML string (what `write_report` writes). `mode_label`: the
    heatmap of the newest modes record, when the caller has drawn it already (a snapshot has)."""
    run_dir = Path(run_dir)
    config_text = (_read_bytes(run_dir / "config.yaml") or b"").decode("utf-8", "replace")
    try:
        config = yaml.safe_load(config_text) if config_text else None
    except yaml.YAMLError:
        config = None
    config = config if isinstance(config, dict) else {}

    def option(section: str, key: str):
        part = config.get(section)
        return part.get(key) if isinstance(part, dict) else None

    stats = _by_step(_read_jsonl(run_dir / "stats.jsonl"))
    metrics = _read_jsonl(run_dir / "metrics.jsonl")
    history = _by_step(_read_jsonl(run_dir / "modes.jsonl"))
    saved = _read_json(run_dir / "modes.json")
    if saved is not None and _step(saved) is not None and (not history or saved["step"] > history[-1]["step"]):
        history.append(saved)  # modes.jsonl lost its last line (cut short): modes.json has it
    latest = history[-1] if history else None
    fakes = _latest_fakes(run_dir)
    fakes_png = _png(fakes[1]) if fakes else None
    reals_png = _png(run_dir / "reals.png")

    steps = [r["step"] for r in stats + history] + [s for r in metrics if (s := _step(r)) is not None]
    if fakes:
        steps.append(fakes[0])
    step = max(steps, default=0)
    total = option("train", "steps")
    now = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    speed = _number(stats[-1].get("steps_per_s")) if stats else None

    meta = [f"method <b>{_e(option('method', 'name') or '?')}</b>",
            f"data <b>{_e(option('data', 'name') or '?')}</b>",
            f"step <b>{step}</b>" + (f" / {_e(total)}" if isinstance(total, int) else "")]
    newest = max(stats[-1:] + history[-1:], key=lambda r: r["step"], default={})
    if _number(newest.get("modes_alive")) is not None:
        meta.append(f"modes alive <b>{_e(newest['modes_alive'])}</b>")
    if speed is not None:
        meta.append(f"{speed:.1f} steps/s")
    meta.append(f"written {_e(now)}")

    table = _mode_x_label(latest)
    plots = [
        _figure_html(_plot_losses(stats), "losses"),
        _figure_html(_plot_modes_alive(stats, history), "modes"),
        _figure_html(_plot_pi(history), "pi"),
        _figure_html(_plot_metrics(metrics), "metrics"),
    ]
    plots = [p for p in plots if p]

    samples = []
    cls = "samples" if option("data", "name") in TOY_DATASETS else "samples pixels"
    if fakes_png is not None:
        samples.append(_figure_html(fakes_png, "fakes", f"generated, step {fakes[0]} ({fakes[1].name})"
                                    + ("; one row per mode, modes sorted by π" if reals_png else ""),
                                    cls=cls))
    if reals_png is not None:
        samples.append(_figure_html(reals_png, "reals", "real images of the same modes (reals.png)",
                                    cls=cls))

    log_lines = (_read_bytes(run_dir / "log.txt") or b"").decode("utf-8", "replace").splitlines()[-30:]

    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(run_dir.resolve().name)}: selfcond report</title>",
        f"<style>{CSS}</style></head><body>",
        f"<h1>{_e(run_dir.resolve().name)}</h1>",
        f'<div class="meta">{" &middot; ".join(meta)}</div>',
        "<details><summary>config.yaml</summary>",
        f"<pre>{_e(config_text) if config_text else 'no config.yaml'}</pre></details>",
        "<h2>Metrics</h2>", _metrics_table(metrics),
        "<h2>Plots</h2>",
        f'<div class="grid">{"".join(plots)}</div>' if plots else '<p class="none">no statistics yet</p>',
    ]
    if table is not None:
        label_step = latest.get("step")
        parts += [f"<h2>Modes x true labels (step {_e(label_step)})</h2>",
                  '<div class="grid">', _figure_html(mode_label or _plot_mode_x_label(latest, table), "mode_x_label"),
                  f"<div>{_mode_table(latest, table)}</div></div>"]
    parts += ["<h2>Samples</h2>",
              f'<div class="grid">{"".join(samples)}</div>' if samples
              else '<p class="none">no samples yet</p>']
    if log_lines:
        parts += ["<details><summary>log.txt (last lines)</summary>",
                  f"<pre>{_e(chr(10).join(log_lines))}</pre></details>"]
    parts += [f"<script>{SCRIPT}</script>", "</body></html>", ""]
    return "\n".join(parts)


def write_report(run_dir: str | Path, mode_label: bytes | None = None) -> Path:
    """Write `run_dir/report.html` from what the run directory holds now and return its path.

    Reads config.yaml, stats.jsonl, metrics.jsonl, modes.jsonl / modes.json, the newest
    fakes_<step>.png and reals.png; any of them may be missing or partial (a jsonl line that does
    not parse is skipped). The page is one static file: inline CSS, plots and images as base64 PNG
    data URIs, no network references. It is written atomically (temp file, fsync, rename), so a
    browser or a crash never sees half a report. Costs about a second of CPU (matplotlib).
    """
    run_dir = Path(run_dir)
    path = run_dir / "report.html"
    atomic_write(path, render_report(run_dir, mode_label))
    return path
