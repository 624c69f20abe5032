"""report.html: built from real (tiny) runs, checked as HTML and in headless Chromium.

Run as a script to write a report and its screenshot (how docs/img/report.png was made):
    python tests/test_report.py RUN_DIR OUT.png [WIDTH]
"""

from __future__ import annotations

import base64
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from html.parser import HTMLParser
from pathlib import Path

import pytest

from selfcond.report import write_report

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
TINY = {"train.steps": 20, "train.snapshot_every": 10, "train.log_every": 5, "train.threads": 1,
        "model.g_width": 8, "model.d_width": 8}


class Page(HTMLParser):
    """The parts of a report the tests look at: <img> attributes, table ids, <body> attributes."""

    def __init__(self, text: str):
        super().__init__()
        self.imgs, self.tables, self.body = [], [], {}
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img":
            self.imgs.append(attrs)
        elif tag == "table":
            self.tables.append(attrs.get("id"))
        elif tag == "body":
            self.body = attrs

    def plots(self) -> list[str]:
        return [a["data-plot"] for a in self.imgs if "plot" in a.get("class", "").split()]


def make_run(root: Path, **over) -> Path:
    from selfcond.config import resolve
    from selfcond.train import start_run

    t = start_run(resolve({}, {**TINY, **over}), root)
    t.train(progress=False)
    for ckpt in t.run_dir.glob("checkpoint-*.pt"):  # not read by the report; keeps copies small
        ckpt.unlink()
    return t.run_dir


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("runs"), **{
        "data.name": "digits", "method.k": 4, "method.recluster_every": 10, "method.cluster_samples": 500})


@pytest.fixture(scope="module")
def grid_run(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("runs"), **{
        "data.name": "grid", "method.name": "gan", "train.eval_samples": 500})


def copy_run(run: Path, tmp_path: Path) -> Path:
    dst = tmp_path / run.name
    shutil.copytree(run, dst)
    (dst / "report.html").unlink(missing_ok=True)
    return dst


def decode(uri: str) -> bytes:
    prefix = "data:image/png;base64,"
    assert uri.startswith(prefix), uri[:40]
    return base64.b64decode(uri[len(prefix):], validate=True)


# --- the HTML, without a browser -----------------------------------------------------------------


def test_digits_report_has_plots_images_and_mode_table(digits_run, tmp_path):
    run = copy_run(digits_run, tmp_path)
    path = write_report(run)
    assert path == run / "report.html"
    text = path.read_text()
    page = Page(text)
    assert page.plots() == ["losses", "modes", "pi", "metrics", "mode_x_label"]
    assert [a["data-plot"] for a in page.imgs if "samples" in a["class"]] == ["fakes", "reals"]
    for img in page.imgs:
        png = decode(img["src"])
        assert png.startswith(PNG_MAGIC) and len(png) > 1000
    # the latest sample grid, byte for byte
    assert decode(page.imgs[-2]["src"]) == (run / "fakes_00000020.png").read_bytes()
    assert page.tables == ["metrics", "mode-x-label"]
    assert "<b>scgan</b>" in text and "<b>digits</b>" in text and "step <b>20</b> / 20" in text
    assert "<details><summary>config.yaml</summary>" in text and "recluster_every: 10" in text
    assert 'window.addEventListener("load"' in text
    # static: no network references, no files left beside it
    assert "http://" not in text and "https://" not in text and "<link" not in text
    assert not [p.name for p in run.iterdir() if p.name.startswith(".")]
    assert len(text) < 1_000_000


def test_a_snapshot_s_heatmap_is_embedded_not_drawn_again(digits_run, tmp_path):
    """The training loop draws modes_x_labels.png at each snapshot and hands it to the report."""
    run = copy_run(digits_run, tmp_path)
    png = (run / "modes_x_labels.png").read_bytes()
    page = Page(write_report(run, mode_label=png).read_text())
    heat = [decode(a["src"]) for a in page.imgs if a.get("data-plot") == "mode_x_label"]
    assert heat == [png]
    # ...and the report run by the training loop embedded the very file it wrote
    page = Page((digits_run / "report.html").read_text())
    assert [decode(a["src"]) for a in page.imgs if a.get("data-plot") == "mode_x_label"] == [png]


def test_2d_unconditional_run_has_no_mode_table(grid_run, tmp_path):
    run = copy_run(grid_run, tmp_path)
    page = Page(write_report(run).read_text())
    assert page.plots() == ["losses", "modes", "metrics"]  # no π: gan has no modes files
    assert [a["data-plot"] for a in page.imgs if "samples" in a["class"]] == ["fakes"]
    assert page.tables == ["metrics"]
    assert all(decode(img["src"]).startswith(PNG_MAGIC) for img in page.imgs)


def test_truncated_and_garbled_lines_are_skipped(digits_run, tmp_path):
    run = copy_run(digits_run, tmp_path)
    # the last line of each jsonl cut in the middle, as while it is being written
    for name in ("stats.jsonl", "metrics.jsonl", "modes.jsonl"):
        data = (run / name).read_bytes()
        last = data.rstrip(b"\n").rfind(b"\n") + 1
        (run / name).write_bytes(data[:last] + data[last:last + 25])
    with open(run / "stats.jsonl", "ab") as f:
        f.write(b"\n\xff\xfe not json\n[1, 2]\n{\"step\": \"x\", \"loss_d\": NaN}\n")
    text = write_report(run).read_text()
    page = Page(text)
    assert page.plots() == ["losses", "modes", "pi", "metrics", "mode_x_label"]
    assert text.count("<tr>", text.index('id="metrics"'), text.index("</table>")) == 2  # head + 1 row
    # modes.jsonl lost step 20, modes.json still has it
    assert "Modes x true labels (step 20)" in text


def test_run_with_only_a_config_renders(digits_run, tmp_path):
    run = tmp_path / "00000-fresh"
    run.mkdir()
    shutil.copy(digits_run / "config.yaml", run)
    text = write_report(run).read_text()
    page = Page(text)
    assert page.imgs == [] and page.tables == []
    assert "no metrics yet" in text and "no samples yet" in text and "step <b>0</b> / 20" in text
    # not even a config, and a corrupt image: still a page
    (run / "config.yaml").unlink()
    (run / "fakes_00000010.png").write_bytes(b"not a png")
    page = Page(write_report(run).read_text())
    assert page.imgs == []


def test_report_is_rewritten_in_place(digits_run, tmp_path):
    run = copy_run(digits_run, tmp_path)
    first = write_report(run).read_text()
    with open(run / "metrics.jsonl", "a") as f:
        f.write('{"step": 30, "purity": 0.5, "source": "evaluate"}\n')
    second = write_report(run).read_text()
    assert second != first and "evaluate" in second
    assert sorted(p.name for p in run.iterdir() if "report" in p.name) == ["report.html"]


# --- in a browser ---------------------------------------------------------------------------------


def chromium(url: str, *args: str, timeout: float = 60) -> str:
    """Run Debian's headless Chromium on `url` and return its stdout; its whole process group is
    killed afterwards, whatever happens."""
    exe = shutil.which("chromium")
    if exe is None:
        pytest.skip("no chromium binary on PATH (.ci/run installs Debian's chromium)")
    with tempfile.TemporaryDirectory(prefix="selfcond-chromium-") as profile:
        cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               "--disable-breakpad", "--disable-crash-reporter", f"--user-data-dir={profile}",
               "--virtual-time-budget=5000", *args, url]
        env = {**os.environ, "HOME": profile}  # nothing written to the real home directory
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env,
                                start_new_session=True)
        try:
            out, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"chromium did not finish in {timeout} s")
        finally:
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # its helpers (zygote, renderers) too
            except ProcessLookupError:
                pass
            proc.communicate()
    assert proc.returncode == 0, f"chromium exited with {proc.returncode}"
    return out.decode("utf-8", "replace")


def screenshot(report: Path, out: Path, width: int = 1200, height: int = 2000) -> Path:
    chromium(report.resolve().as_uri(), f"--screenshot={out}", f"--window-size={width},{height}")
    return out


@pytest.mark.parametrize("which", ["digits_run", "grid_run"])
def test_report_loads_in_headless_chromium(which, request, tmp_path):
    run = copy_run(request.getfixturevalue(which), tmp_path)
    report = write_report(run)
    n = len(Page(report.read_text()).imgs)
    dom = Page(chromium(report.resolve().as_uri(), "--dump-dom"))
    assert dom.body.get("data-images-loaded") == f"{n}/{n}", dom.body
    assert len(dom.plots()) >= (4 if which == "digits_run" else 3)
    assert len(dom.imgs) == n

    if which == "digits_run":
        from PIL import Image

        shot = screenshot(report, tmp_path / "report.png")
        assert shot.read_bytes().startswith(PNG_MAGIC) and shot.stat().st_size > 10_000
        with Image.open(shot) as im:
            assert im.size == (1200, 2000)
            assert len(im.convert("L").getcolors(1 << 16)) > 16  # not a blank page


def _doc_screenshot(run_dir: str, out: str, width: str = "1200") -> None:
    """Write RUN_DIR/report.html and a screenshot of it, cropped to the page, to OUT."""
    from PIL import Image, ImageChops

    report = write_report(run_dir)
    shot = Path(out).with_suffix(".full.png")
    try:
        screenshot(report, shot, int(width), 6000)
    except pytest.skip.Exception as e:
        sys.exit(str(e))
    with Image.open(shot) as im:
        im = im.convert("RGB")
        background = Image.new("RGB", im.size, im.getpixel((im.width - 1, im.height - 1)))
        box = ImageChops.difference(im, background).getbbox()
        im.crop((0, 0, im.width, min(im.height, box[3] + 16))).save(out, optimize=True)
    shot.unlink()


if __name__ == "__main__":
    _doc_screenshot(*sys.argv[1:])
