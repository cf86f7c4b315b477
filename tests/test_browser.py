"""The explorers of notebooks/11_decoding_explorer.ipynb, driven in a real browser.

JupyterLab: open a copy of the notebook, run all cells, move the sampling explorer's temperature
slider (the text and the plot must change), set top-p to 0 (an error message must appear) and
back (it must go away), and move the attention explorer's layer slider (the heat map must change).
Voila: the same notebook as a page, and the temperature slider again. Screenshots go to
browser-shots/ (or $SHOTS).

Needs Debian's Chromium at /usr/bin/chromium (apt-get install -y chromium) and the playwright
Python package in the venv that runs jupyterlab and voila; never `playwright install`. Run with
    python -m pytest -q -m browser tests/test_browser.py
Each server serves a temporary copy, without outputs, from a fresh temporary directory, with
throwaway Jupyter/IPython/matplotlib settings; it listens on 127.0.0.1 only and is stopped with
its whole process group.
"""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
if not Path(CHROMIUM).exists() and os.environ.get("CI"):  # CI installs Chromium: never skip silently there
    raise RuntimeError(f"{CHROMIUM} is missing on CI: .ci/run must install it (apt-get install -y chromium)")
if not Path(CHROMIUM).exists():
    pytest.skip(
        f"{CHROMIUM} is missing: install it with apt-get install -y chromium", allow_module_level=True
    )
pw = pytest.importorskip("playwright.sync_api")

pytestmark = pytest.mark.browser
expect = pw.expect
expect.set_options(timeout=60_000)  # a busy 2-core machine runs the whole notebook first

ROOT = Path(__file__).resolve().parents[1]
NB = ROOT / "notebooks" / "11_decoding_explorer.ipynb"
SHOTS = Path(os.environ.get("SHOTS", ROOT / "browser-shots")).resolve()
TOKEN = "browser-test-token"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
]
BIN = Path(sys.executable).parent  # the jupyter and voila of the venv running pytest


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _port_open(port):
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _copy_notebook(tmp):
    """The notebook without outputs, in tmp/nb: JupyterLab autosaves, so never serve the original."""
    (tmp / "nb").mkdir()
    notebook = json.loads(NB.read_text())
    notebook["metadata"].pop("widgets", None)
    for cell in notebook["cells"]:
        if cell["cell_type"] == "code":
            cell["outputs"], cell["execution_count"] = [], None
    (tmp / "nb" / NB.name).write_text(json.dumps(notebook))


@contextmanager
def _serve(tmp, argv, ready, timeout=120):
    """Start a server in its own process group; yield once ready() is true; then stop the group."""
    env = dict(os.environ)
    for var, sub in [
        ("JUPYTER_CONFIG_DIR", "cfg"),
        ("JUPYTER_DATA_DIR", "data"),
        ("JUPYTER_RUNTIME_DIR", "run"),
        ("IPYTHONDIR", "ipy"),
        ("MPLCONFIGDIR", "mpl"),
    ]:
        env[var] = str(tmp / sub)
        (tmp / sub).mkdir(parents=True, exist_ok=True)
    # No "Jupyter news?" notification over the outputs, no update check.
    settings = tmp / "cfg/lab/user-settings/@jupyterlab/apputils-extension"
    settings.mkdir(parents=True, exist_ok=True)
    (settings / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False, "doNotDisturbMode": True})
    )
    log_path = tmp / "server.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            argv, cwd=tmp / "nb", env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            start = time.monotonic()
            while not ready():
                if proc.poll() is not None:
                    raise RuntimeError(f"server exited with {proc.returncode}:\n{log_path.read_text()}")
                if time.monotonic() - start > timeout:
                    raise TimeoutError(f"server not ready after {timeout}s:\n{log_path.read_text()}")
                time.sleep(0.25)
            yield
        finally:
            proc.terminate()  # jupyter shuts its kernels down on SIGTERM
            with suppress(subprocess.TimeoutExpired):
                proc.wait(20)
            with suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)  # anything left in this server's own group


@pytest.fixture(scope="module")
def browser():
    with pw.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    page = browser.new_page(viewport={"width": 1280, "height": 2000})  # tall: JupyterLab scrolls inside
    page.set_default_timeout(60_000)
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    yield page
    page.close()
    assert not errors, errors


@pytest.fixture
def lab(tmp_path):
    _copy_notebook(tmp_path)
    port = _free_port()

    def ready():
        try:
            url = f"http://127.0.0.1:{port}/api/status?token={TOKEN}"
            return urllib.request.urlopen(url, timeout=2).status == 200
        except OSError:
            return False

    argv = [
        str(BIN / "jupyter"),
        "lab",
        "--allow-root",
        "--no-browser",
        "--ip=127.0.0.1",
        f"--port={port}",
        f"--ServerApp.token={TOKEN}",
        f"--ServerApp.root_dir={tmp_path / 'nb'}",
        "--LabApp.news_url=None",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    ]
    with _serve(tmp_path, argv, ready):
        yield f"http://127.0.0.1:{port}"


@pytest.fixture
def voila(tmp_path):
    _copy_notebook(tmp_path)
    port = _free_port()
    argv = [str(BIN / "voila"), NB.name, "--no-browser", "--Voila.ip=127.0.0.1", f"--port={port}"]
    # Ready = the port is open: a GET would already start a kernel and run the notebook.
    with _serve(tmp_path, argv, lambda: _port_open(port)):
        yield f"http://127.0.0.1:{port}"


def _slider(page, label):
    """(handle, readout) of the first ipywidgets slider whose description is `label`."""
    row = (
        page.locator(".widget-slider")
        .filter(has=page.locator("label", has_text=re.compile(f"^{label}$")))
        .first
    )
    return row.locator(".noUi-handle"), row.locator(".widget-readout")


def _press(handle, key):
    handle.scroll_into_view_if_needed()
    handle.focus()
    handle.press(key)


def _check_sampling_explorer(page):
    """Temperature one step up: new text, new plot, no error."""
    text = page.locator(".mt-generated-text").first
    plot = page.locator(".mt-distribution-plot").first
    expect(text).to_contain_text("ROMEO:")
    expect(plot).to_contain_text("kept")
    assert plot.evaluate("p => p.getBoundingClientRect().width") > 200  # laid out, not a bare string
    before_text, before_plot = text.text_content(), plot.inner_html()
    temperature, readout = _slider(page, "temperature")
    expect(readout).to_have_text("0.80")
    _press(temperature, "ArrowRight")  # one step of 0.05
    expect(readout).to_have_text("0.85")
    expect(text).not_to_have_text(before_text)
    page.wait_for_function("([p, old]) => p.innerHTML !== old", arg=[plot.element_handle(), before_plot])
    assert text.text_content() != before_text
    expect(page.locator(".mt-error").first).to_have_text("")
    text.scroll_into_view_if_needed()


def test_explorers_in_jupyterlab(lab, page):
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.goto(f"{lab}/lab/tree/{NB.name}?token={TOKEN}&reset")  # &reset: a fresh workspace
    # Wait for a connected kernel: a Run All sent while the status bar still says
    # "No Kernel | Initializing" is silently dropped.
    expect(page.locator(".jp-StatusBar-Widget").first).to_contain_text(re.compile(r"(?<!No Kernel )\| Idle"))
    page.get_by_role("menuitem", name="Run", exact=True).click()
    page.get_by_role("menuitem", name="Run All Cells", exact=True).click()
    try:
        _check_sampling_explorer(page)
        page.screenshot(path=str(SHOTS / "jupyterlab-sampling.png"))

        error = page.locator(".mt-error").first
        top_p, _ = _slider(page, "top-p")
        _press(top_p, "Home")  # top-p = 0: impossible
        expect(error).to_contain_text("top_p must be a number in (0, 1]")
        page.screenshot(path=str(SHOTS / "jupyterlab-error.png"))
        _press(top_p, "End")  # top-p = 1: fine again
        expect(error).to_have_text("")

        heatmap = page.locator("img.mt-attention-plot").first
        expect(heatmap).to_have_attribute("src", re.compile("."))
        before = heatmap.get_attribute("src")
        layer, readout = _slider(page, "layer")  # the GPT's explorer comes first
        _press(layer, "ArrowRight")
        expect(readout).to_have_text("1")
        expect(heatmap).not_to_have_attribute("src", before)
        heatmap.scroll_into_view_if_needed()
        assert heatmap.evaluate("img => img.decode().then(() => img.naturalWidth)") > 200
        expect(page.get_by_text("Error displaying widget")).to_have_count(0)
    finally:  # a screenshot either way: on failure it shows where the page was stuck
        page.screenshot(path=str(SHOTS / "jupyterlab-attention.png"))


def test_explorers_in_voila(voila, page):
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.goto(voila)  # Voila runs every cell in the server, then sends the page
    try:
        _check_sampling_explorer(page)
        expect(page.locator("img.mt-attention-plot")).to_have_count(2)  # GPT and seq2seq explorers
        expect(page.locator("img.mt-beam-plot")).to_have_count(1)
    finally:
        page.screenshot(path=str(SHOTS / "voila.png"))
