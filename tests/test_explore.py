"""`alliance explore`: argument handling, the notebook copy, and Voila serving it on 127.0.0.1."""

import contextlib
import hashlib
import json
import re
import subprocess
import sys
import time
import urllib.error
from pathlib import Path

import pandas as pd
import pytest

from alliance_lib import explore
from alliance_lib.cli import build_parser, main
from alliance_lib.errors import AllianceError
from alliance_lib.study import StudyError

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "data" / "demo" / "study.yaml"
RAW_ID = re.compile(r"CL-\d{4}")  # the demo's raw client IDs


def _cells(path):
    return json.loads(Path(path).read_text(encoding="utf-8"))["cells"]


# ------------------------------------------------------------------ the command line
def test_explore_arguments_and_defaults():
    args = build_parser().parse_args(["explore", "s.yaml"])
    assert (args.study_yaml, args.wave, args.port, args.no_browser) == (
        Path("s.yaml"),
        None,
        None,
        False,
    )
    args = build_parser().parse_args(
        ["explore", "s.yaml", "--wave", "2", "--port", "8899", "--no-browser"]
    )
    assert (args.wave, args.port, args.no_browser) == (2, 8899, True)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["explore", "s.yaml", "--wave", "two"])


def test_explore_forwards_flags_to_serve(monkeypatch):
    seen = {}

    def fake_serve(study_yaml, wave=None, **kw):
        seen.update(study_yaml=study_yaml, wave=wave, **kw)
        return 0

    monkeypatch.setattr(explore, "serve", fake_serve)
    assert main(["explore", str(DEMO), "--wave", "2", "--port", "8123", "--no-browser"]) == 0
    assert seen == {"study_yaml": DEMO, "wave": 2, "port": 8123, "open_browser": False}
    assert main(["explore", str(DEMO)]) == 0
    assert seen["wave"] is None and seen["port"] is None and seen["open_browser"] is True


def test_explore_unknown_wave_fails_before_any_server(capsys, monkeypatch):
    def no_server(*a, **k):
        raise AssertionError("a server was started")

    monkeypatch.setattr(explore.ExploreServer, "start", no_server)
    assert main(["explore", str(DEMO), "--wave", "9", "--no-browser"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("alliance explore: error:") and "wave 9" in err and "[1, 2, 3]" in err


def test_explore_without_voila_says_what_to_install(monkeypatch):
    monkeypatch.setattr(explore, "_voila_installed", lambda: False)
    with pytest.raises(AllianceError, match="voila is not installed") as info:
        explore.ExploreServer(DEMO, 3)
    assert "[lab]" in info.value.hint


def test_explore_help_is_fast_and_imports_nothing_heavy():
    code = (
        "import sys, alliance_lib.cli as c\n"
        "try:\n    c.main(['explore', '--help'])\nexcept SystemExit:\n    pass\n"
        "print('HEAVY', [m for m in ('pandas', 'papermill', 'voila', 'nbformat') "
        "if m in sys.modules])\n"
    )
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert time.perf_counter() - start < 1.0
    assert "HEAVY []" in out.stdout and "--no-browser" in out.stdout


def test_voila_command_serves_localhost_only():
    cmd = explore.voila_command(Path("w/explore.ipynb"), port=8765)
    assert cmd[:4] == [sys.executable, "-m", "voila", str(Path("w/explore.ipynb"))]
    assert "--Voila.ip=127.0.0.1" in cmd and "--port=8765" in cmd and "--no-browser" in cmd
    assert "--Voila.auto_token=True" in cmd and "--Voila.port_retries=0" in cmd
    assert "--KernelManager.transport=ipc" in cmd  # the kernel on local sockets, not TCP ports
    assert not any("0.0.0.0" in part or part.startswith("--Voila.token") for part in cmd)


# ------------------------------------------------------------------ the notebook copy
def test_copy_is_parameterised_and_leaves_the_tracked_notebook_alone(tmp_path):
    before = hashlib.sha256(explore.NOTEBOOK.read_bytes()).hexdigest()
    copy = explore.explore_notebook(DEMO, 2, out_dir=tmp_path / "app")
    assert copy == tmp_path / "app" / "explore.ipynb"
    assert hashlib.sha256(explore.NOTEBOOK.read_bytes()).hexdigest() == before
    assert not list((ROOT / "notebooks").glob("explore*.ipynb.*"))
    nb = json.loads(copy.read_text(encoding="utf-8"))
    assert nb["metadata"]["kernelspec"]["name"] == "python3"
    cells = nb["cells"]
    tags = [c["metadata"].get("tags", []) for c in cells]
    i = next(k for k, t in enumerate(tags) if "parameters" in t)
    assert "injected-parameters" in tags[i + 1]  # right after the defaults, as papermill does
    injected = "".join(cells[i + 1]["source"])
    assert "study_yaml = " in injected and str(DEMO.resolve()) in injected
    assert "wave = 2" in injected
    # the notebook's own checks (one of them types a raw ID) are not part of the app
    assert not any("remove-cell" in t for t in tags)
    assert not any("read_wave" in "".join(c["source"]) for c in cells)
    code = [c for c in cells if c["cell_type"] == "code"]
    assert all(not c["outputs"] and c["execution_count"] is None for c in code)
    # every other cell of the tracked notebook is there, unchanged
    kept = [
        c for c in _cells(explore.NOTEBOOK) if "remove-cell" not in c["metadata"].get("tags", [])
    ]
    shown = [c for k, c in enumerate(cells) if k != i + 1]
    assert ["".join(c["source"]) for c in shown] == ["".join(c["source"]) for c in kept]


def test_copy_defaults_to_the_latest_wave_and_checks_the_wave(tmp_path):
    copy = explore.explore_notebook(DEMO, out_dir=tmp_path)
    injected = [c for c in _cells(copy) if "injected-parameters" in c["metadata"].get("tags", [])]
    assert "wave = 3" in "".join(injected[0]["source"])
    with pytest.raises(StudyError, match="wave 7 is not defined"):
        explore.explore_notebook(DEMO, 7, out_dir=tmp_path / "x")
    assert not (tmp_path / "x").exists()
    with pytest.raises(AllianceError, match="not found"):
        explore.explore_notebook(DEMO, 3, out_dir=tmp_path, notebook=tmp_path / "none.ipynb")


# ------------------------------------------------------------------ Voila, for real
@pytest.mark.slow
def test_voila_serves_the_app_on_localhost_without_raw_ids():
    pytest.importorskip("voila", reason="voila is not installed (the lab extra)")
    app = explore.ExploreServer(DEMO, 3)
    assert app.url.startswith(f"http://127.0.0.1:{app.port}/?token=")
    work = app.work_dir
    try:
        app.start()
        start = time.monotonic()
        try:
            html = app.fetch(timeout=90)  # Voila answers once the notebook has run
        except AllianceError:  # a kernel that never started the notebook: a new server, once
            app.stop()
            assert not work.exists()
            app = explore.ExploreServer(DEMO, 3)
            work = app.work_dir
            app.start()
            start = time.monotonic()
            html = app.fetch(timeout=90)
        rendered = time.monotonic() - start
        assert rendered < 90
        assert "application/vnd.jupyter.widget-view+json" in html  # the widgets' output
        assert "Demo alliance study" in html and "wave 3: 300 clients" in html  # the study
        assert "Is this client on track?" in html
        assert not RAW_ID.search(html), RAW_ID.findall(html)[:3]
        assert str(DEMO.parent) not in html  # sources stripped: no absolute path on the page
        assert "Traceback" not in html and "application/vnd.jupyter.stderr" not in html
        # without the token the app is not shown
        try:
            other = app.fetch(timeout=30, token=False)
        except urllib.error.HTTPError as exc:
            assert exc.code in (401, 403)
        else:
            assert "Demo alliance study" not in other
    finally:
        proc = app.process
        app.stop()
    assert proc.poll() is not None, "voila still running"
    assert not work.exists(), "the temporary copy was not removed"


# ------------------------------------------------------------------ in a real browser
@contextlib.contextmanager
def _chromium_page(url, port):
    """Headless Chromium on a DevTools port, showing ``url``; yields call(method, **params)."""
    import json as _json
    import shutil
    import tempfile
    import urllib.request

    from websockets.sync.client import connect

    profile = tempfile.mkdtemp(prefix="explore-chromium-")
    proc = subprocess.Popen(
        [shutil.which("chromium") or shutil.which("chromium-browser"), "--headless",
         "--no-sandbox", "--disable-gpu", f"--remote-debugging-port={port}",
         f"--user-data-dir={profile}", "--window-size=1300,2400", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/json", timeout=2) as r:
                    tabs = _json.load(r)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        page = [t for t in tabs if t["type"] == "page"][0]["webSocketDebuggerUrl"]
        with connect(page, max_size=None) as ws:
            counter = [0]

            def call(method, **params):
                counter[0] += 1
                ws.send(_json.dumps({"id": counter[0], "method": method, "params": params}))
                while True:
                    msg = _json.loads(ws.recv(timeout=60))
                    if msg.get("id") == counter[0]:
                        return msg.get("result", {})

            call("Page.navigate", url=url)
            yield call
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        shutil.rmtree(profile, ignore_errors=True)


def _text(call):
    r = call("Runtime.evaluate", expression="document.body.innerText", returnByValue=True)
    return r.get("result", {}).get("value") or ""


def _wait_for(call, pattern, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = re.search(pattern, _text(call))
        if found:
            return found
        time.sleep(1)
    raise AssertionError(f"{pattern!r} not on the page within {timeout} s: {_text(call)[-500:]}")


@pytest.mark.slow
def test_widgets_render_and_react_in_a_browser():
    pytest.importorskip("voila", reason="voila is not installed (the lab extra)")
    import shutil

    if not (shutil.which("chromium") or shutil.which("chromium-browser")):
        pytest.skip("headless Chromium not found (install the Debian package 'chromium')")
    ready = r"Client (C-[0-9a-f]+), sessions by state"
    with contextlib.ExitStack() as stack:
        # now and then the app's kernel never starts the notebook (Voila waits on it for good):
        # a user would restart `alliance explore`, and so does the test, once (twice fails)
        for attempt in (1, 2):
            app = stack.enter_context(explore.ExploreServer(DEMO, 3))
            app.wait_listening()
            call = stack.enter_context(_chromium_page(app.url, explore.free_port()))
            try:
                first = _wait_for(call, ready, 90).group(1)
                break
            except AssertionError:
                if attempt == 2:
                    raise
                stack.close()
        text = _text(call)
        assert "Loading widget" not in text and not RAW_ID.search(text)
        n_img = call("Runtime.evaluate", expression="document.images.length",
                     returnByValue=True)["result"]["value"]  # fmt: skip
        assert n_img >= 2  # the trajectory figure and the expected-response figure
        # choose another client in the Client dropdown: the monitoring panel follows
        pick = (
            "(() => { const s = [...document.querySelectorAll('select')].find("
            "e => [...e.options].some(o => o.text.startsWith('C-')));"
            "s.selectedIndex = 1; s.dispatchEvent(new Event('change', {bubbles: true}));"
            "return s.options[1].text; })()"
        )
        second = call("Runtime.evaluate", expression=pick, returnByValue=True)["result"]
        second = second["value"]
        assert second != first
        _wait_for(call, rf"Client {second}, sessions by state", 60)
        # type a raw ID into "Find ID": hashed in the kernel, selected, never shown
        import alliance_lib as al
        from alliance_lib.waves import read_wave

        study = al.load_study(DEMO)
        raw = str(read_wave(study, 3)["client_id"].iloc[-1])
        with pytest.warns(UserWarning, match="pseudonym key"):  # the demo's key is tracked
            key = study.salt
        expected = al.privacy.pseudonymise(pd.Series([raw]), salt=key).iloc[0]
        typed = (
            "(() => { const i = document.querySelector('input[type=password]');"
            f"i.value = {raw!r}; i.dispatchEvent(new Event('change', {{bubbles: true}}));"
            "return true; })()"
        )
        call("Runtime.evaluate", expression=typed, returnByValue=True)
        _wait_for(call, rf"Found: shown as {expected}", 60)
        _wait_for(call, rf"Client {expected}, sessions by state", 60)
        box = "document.querySelector('input[type=password]').value"
        assert (
            call("Runtime.evaluate", expression=box, returnByValue=True)["result"]["value"] == ""
        )  # the kernel cleared it
        assert raw not in _text(call) and not RAW_ID.search(_text(call))


def test_a_port_in_use_is_refused_before_voila_starts():
    pytest.importorskip("voila", reason="voila is not installed (the lab extra)")
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(AllianceError, match=f"port {port} on 127.0.0.1 is in use"):
            explore.ExploreServer(DEMO, 3, port=port)


def test_serve_prints_the_address_opens_the_browser_if_asked_and_stops(monkeypatch, capsys):
    events = []

    class FakeProcess:
        def wait(self):
            events.append("wait")
            raise KeyboardInterrupt  # the user presses Ctrl-C

    class FakeServer:
        def __init__(self, study_yaml, wave, *, port, notebook):
            events.append(("init", wave, port))
            self.url, self.process = "http://127.0.0.1:1234/?token=t", FakeProcess()

        def start(self):
            events.append("start")

        def wait_listening(self):
            events.append("listening")

        def stop(self):
            events.append("stop")

    import webbrowser

    monkeypatch.setattr(explore, "ExploreServer", FakeServer)
    monkeypatch.setattr(webbrowser, "open", lambda url: events.append(("browser", url)))
    assert explore.serve(DEMO, 2, port=1234, open_browser=False) == 0
    assert events == [("init", 2, 1234), "start", "listening", "wait", "stop"]
    assert "Demo alliance study: explore app at http://127.0.0.1:1234/?token=t" in (
        capsys.readouterr().out
    )
    events.clear()
    assert explore.serve(DEMO, port=None) == 0
    assert ("browser", "http://127.0.0.1:1234/?token=t") in events and events[-1] == "stop"


@pytest.mark.slow
def test_the_command_stops_voila_when_it_is_terminated():
    pytest.importorskip("voila", reason="voila is not installed (the lab extra)")
    import signal
    import socket

    port = explore.free_port()
    cmd = [sys.executable, "-m", "alliance_lib.cli", "explore", str(DEMO), "--port", str(port),
           "--no-browser"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        line = proc.stdout.readline()  # printed once the server listens
        assert f"explore app at http://127.0.0.1:{port}/?token=" in line, line
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
        with socket.socket() as s:
            assert s.connect_ex(("127.0.0.1", port)) != 0, "voila outlived the command"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
