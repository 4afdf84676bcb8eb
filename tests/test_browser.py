"""The notebooks in a real browser: JupyterLab on 127.0.0.1, headless Chromium driven by Playwright.

Notebooks 00 and 07 (copies, outputs cleared, quick mode) are run cell by cell through the page's
"Run All Cells"; the page must show no traceback, no "Error displaying widget", no widget left
"Loading", and the browser console no error. Then, as a person would: in 00 another landmark is
picked and the figures must change; in 07 a click on the template annotator's image moves a
landmark and "save" must write it, within a pixel, to the CSV. Screenshots go to
``$CC2DKIT_SCREENSHOTS`` (default ``runs/browser``). Skipped, with the reason, where Chromium
(Debian's ``chromium``) or Playwright for Python is not installed; ``.ci/run`` installs both.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SHOTS = Path(os.environ.get("CC2DKIT_SCREENSHOTS", ROOT / "runs" / "browser"))
NOTEBOOKS = ("00_quickstart.ipynb", "07_your_own_data.ipynb", "08_refinement.ipynb")
RUN_TIMEOUT_S = 600
PANEL = ".jp-NotebookPanel:not(.lm-mod-hidden)"  # the notebook shown (others may be open in hidden tabs)

try:
    from playwright.sync_api import sync_playwright
except ImportError:  # pragma: no cover - depends on the machine
    sync_playwright = None

pytestmark = [
    pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (Debian: apt-get install chromium)"),
    pytest.mark.skipif(sync_playwright is None, reason="Playwright for Python is not installed (pip install playwright)"),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cleared(src: Path, dst: Path) -> None:
    """A copy of a notebook without outputs or execution counts (a run is then visible as it happens)."""
    nb = json.loads(src.read_text())
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            cell["outputs"], cell["execution_count"] = [], None
    nb["metadata"].pop("widgets", None)
    dst.write_text(json.dumps(nb))


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """JupyterLab serving the copies, on 127.0.0.1 only, with its own settings and workspaces."""
    root = tmp_path_factory.mktemp("lab")
    (root / "notebooks").mkdir()
    for name in NOTEBOOKS:
        _cleared(ROOT / "notebooks" / name, root / "notebooks" / name)
    # every cell in the page (JupyterLab 4 renders only the visible ones by default), no news question
    settings = root / "settings" / "@jupyterlab"
    (settings / "notebook-extension").mkdir(parents=True)
    (settings / "notebook-extension" / "tracker.jupyterlab-settings").write_text('{"windowingMode": "none"}')
    (settings / "apputils-extension").mkdir(parents=True)
    (settings / "apputils-extension" / "notification.jupyterlab-settings").write_text('{"fetchNews": "false"}')
    port, token = _free_port(), "cc2dkit-browser-test"
    env = dict(os.environ, CC2DKIT_QUICK="1", JUPYTER_CONFIG_DIR=str(root / "config"))
    log = open(root / "lab.log", "w")
    server = subprocess.Popen([sys.executable, "-m", "jupyter", "lab", "--no-browser", "--allow-root",
                               "--ip=127.0.0.1", f"--port={port}", f"--IdentityProvider.token={token}",
                               f"--ServerApp.root_dir={root / 'notebooks'}",
                               f"--LabApp.user_settings_dir={root / 'settings'}",
                               f"--LabApp.workspaces_dir={root / 'workspaces'}"],
                              env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.time() > deadline or server.poll() is not None:
                    raise RuntimeError(f"JupyterLab did not start: {(root / 'lab.log').read_text()[-2000:]}")
                time.sleep(0.5)
        yield f"http://127.0.0.1:{port}", token, root
    finally:
        server.terminate()
        server.wait(30)
        log.close()


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield b
        b.close()


def _open_and_run_all(browser, lab, name: str):
    """A page with notebook ``name`` run to its end; returns (page, console errors)."""
    url, token, _ = lab
    page = browser.new_page(viewport={"width": 1400, "height": 1000}, device_scale_factor=1)
    console: list[str] = []
    page.on("console", lambda m: console.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: console.append(str(e)))
    page.goto(f"{url}/lab/workspaces/{Path(name).stem}/tree/{name}?token={token}")  # a workspace of its own
    page.wait_for_selector(".jp-Notebook .jp-CodeCell", timeout=120_000)
    page.wait_for_timeout(2000)
    no = page.get_by_role("button", name="No", exact=True)  # JupyterLab's news question
    if no.count():
        no.first.click()
    # On a slow machine the first notebook's kernel may still be starting (or a kernel dialog open)
    # when Run All is clicked, and nothing queues: answer a dialog, and ask again while no cell has
    # started (a queued or running cell shows [*], a finished one [n], so a retry never runs one twice)
    deadline, prompts, asked, dialogs = time.time() + RUN_TIMEOUT_S, [], 0.0, []
    while time.time() < deadline:
        for dialog in page.query_selector_all(".jp-Dialog"):
            dialogs.append(dialog.inner_text()[:200])
            accept = dialog.query_selector(".jp-mod-accept")
            if accept:
                accept.click()
        prompts = [e.inner_text().strip() for e in page.query_selector_all(f"{PANEL} .jp-CodeCell .jp-InputArea-prompt")]
        if prompts and all(re.fullmatch(r"\[\d+\]:", p) for p in prompts):
            break
        if all(p in ("[ ]:", "") for p in prompts) and time.time() - asked > 60:
            page.get_by_role("menuitem", name="Run", exact=True).click()
            page.get_by_text("Run All Cells", exact=True).click()
            asked = time.time()
        page.wait_for_timeout(1000)
    else:
        raise AssertionError(f"{name} did not finish in {RUN_TIMEOUT_S} s: prompts {prompts}, dialogs {dialogs}")
    page.wait_for_timeout(4000)  # widgets render after their cell
    return page, console


def _assert_clean(page, console: list[str], name: str) -> None:
    text = page.inner_text(f"{PANEL} .jp-Notebook")
    for bad in ("Traceback", "Error displaying widget", "Loading widget"):
        assert bad not in text, f"{name}: the page shows {bad!r}"
    errors = page.query_selector_all(f'{PANEL} .jp-OutputArea-output[data-mime-type="application/vnd.jupyter.error"]')
    assert not errors, f"{name}: {errors[0].inner_text()[:500]}"
    assert not console, f"{name}: browser console errors {console[:5]}"


def _shot(page, name: str) -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / name
    page.screenshot(path=str(path), full_page=False)
    print(f"screenshot: {path}")
    return path


def _run_cell(page, code: str) -> str:
    """Add a cell at the end of the open notebook, run it, return its output text."""
    page.query_selector_all(f"{PANEL} .jp-Notebook .jp-Cell")[-1].click()
    page.keyboard.press("Escape")
    page.keyboard.press("b")
    page.keyboard.press("Enter")
    page.keyboard.insert_text(code)
    page.keyboard.press("Shift+Enter")
    for _ in range(60):
        page.wait_for_timeout(500)
        cells = page.query_selector_all(f"{PANEL} .jp-Notebook .jp-CodeCell")
        outputs = [c for c in cells if code.splitlines()[0] in c.inner_text()]
        if outputs and outputs[-1].query_selector(".jp-OutputArea-output"):
            return outputs[-1].query_selector(".jp-OutputArea-output").inner_text()
    raise AssertionError(f"no output for {code!r}")


def _images(page) -> list[str | None]:
    return [img.get_attribute("src") for img in page.query_selector_all(f"{PANEL} .jp-OutputArea-output img")]


def _changed_after(page, before: list, at_least: int, timeout_s: float = 60) -> list:
    """The output images once ``at_least`` of them differ from ``before`` (a widget redraws one by one)."""
    deadline = time.time() + timeout_s
    while True:
        page.wait_for_timeout(1000)
        after = _images(page)
        changed = sum(a != b for a, b in zip(after, before))
        if len(after) == len(before) and changed >= at_least or time.time() > deadline:
            assert len(after) == len(before) and changed >= at_least, (len(before), len(after), changed)
            return after


def test_quickstart_runs_and_the_picker_changes_the_figures(browser, lab):
    page, console = _open_and_run_all(browser, lab, "00_quickstart.ipynb")
    _assert_clean(page, console, "00_quickstart")
    select = page.query_selector_all(f"{PANEL} .jp-OutputArea-output select")[-1]  # the explorer's landmark picker
    select.scroll_into_view_if_needed()
    page.wait_for_timeout(1000)
    before = _images(page)
    _shot(page, "00_quickstart_explorer.png")
    options = [o.get_attribute("value") for o in select.query_selector_all("option")]
    select.select_option(options[2])
    _changed_after(page, before, at_least=2)  # maps and predictions
    _shot(page, "00_quickstart_picked.png")
    _assert_clean(page, console, "00_quickstart after picking")
    page.close()


def test_refinement_runs_and_the_picker_changes_both_figures(browser, lab):
    page, console = _open_and_run_all(browser, lab, "08_refinement.ipynb")
    _assert_clean(page, console, "08_refinement")
    select = page.query_selector_all(f"{PANEL} .jp-OutputArea-output select")[-1]  # the refinement explorer's picker
    select.scroll_into_view_if_needed()
    page.wait_for_timeout(1000)
    before = _images(page)
    options = [o.get_attribute("value") for o in select.query_selector_all("option")]
    select.select_option(options[3])
    _changed_after(page, before, at_least=2)  # close-up and histograms
    _shot(page, "08_refinement_picked.png")
    _assert_clean(page, console, "08_refinement after picking")
    page.close()


def test_own_data_runs_and_a_click_places_a_landmark(browser, lab):
    page, console = _open_and_run_all(browser, lab, "07_your_own_data.ipynb")
    _assert_clean(page, console, "07_your_own_data")
    target = (100.0, 120.0)  # image pixels of the template, where the click puts its current landmark (P1)
    out = _run_cell(page, "from cc2dkit.widgets.annotation import image_to_canvas\n"
                          f"print('CANVAS', *image_to_canvas({target[0]}, {target[1]}, annotator.view()), "
                          "annotator.figure.bbox.width, annotator.figure.bbox.height, annotator.state.current)")
    _, cx, cy, fig_w, fig_h, current = out.split()
    canvas = page.query_selector_all(f"{PANEL} .jupyter-matplotlib-canvas-div canvas")[1]  # the template annotator's top canvas
    canvas.scroll_into_view_if_needed()
    page.wait_for_timeout(1000)
    box = canvas.bounding_box()
    page.mouse.click(box["x"] + float(cx) * box["width"] / float(fig_w),
                     box["y"] + float(cy) * box["height"] / float(fig_h))
    page.wait_for_timeout(2000)
    _shot(page, "07_annotator_clicked.png")
    page.get_by_role("button", name="save").first.click()
    page.wait_for_timeout(2000)
    csv = lab[2] / "runs" / "own_data" / "landmarks.csv"
    rows = pd.read_csv(csv)
    row = rows[(rows["image"] == "train/train_000.png") & (rows["landmark"] == current)]
    assert len(row) == 1, rows
    assert abs(float(row["x"].iloc[0]) - target[0]) <= 1 and abs(float(row["y"].iloc[0]) - target[1]) <= 1, row
    _assert_clean(page, console, "07_your_own_data after the click")
    page.close()
