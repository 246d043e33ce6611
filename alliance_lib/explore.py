"""The explore notebook as a local Voilà app (``alliance explore STUDY.yaml``).

:func:`explore_notebook` writes a copy of ``notebooks/explore.ipynb`` into a working folder with
the study and wave injected as papermill parameters (the same mechanism as the report template,
so the tracked notebook is never written to and the copy records what it was started with);
:class:`ExploreServer` runs Voilà on that copy, on 127.0.0.1 only, with a random access token;
:func:`serve` is what the command runs.

Why injected parameters, not an environment variable or Voilà's query string: the copy is
self-describing (its ``injected-parameters`` cell says which study and wave it shows, exactly as
a papermill run of the report would), nothing depends on the environment a kernel happens to
inherit, and a browser tab cannot point the app at another file on the machine by editing the
URL. The copy lives in a fresh temporary folder that Voilà serves alone (Voilà also serves static
files next to the notebook; there are none), removed when the server stops.
"""

from __future__ import annotations

import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from alliance_lib.errors import AllianceError

__all__ = ["NOTEBOOK", "explore_notebook", "voila_command", "free_port", "ExploreServer", "serve"]

#: The tracked explore notebook (read only; the app runs a copy).
NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "explore.ipynb"
HOST = "127.0.0.1"


def _voila_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("voila") is not None


def explore_notebook(
    study_yaml: str | Path,
    wave: int | None = None,
    *,
    out_dir: str | Path,
    notebook: str | Path | None = None,
) -> Path:
    """Write the app's copy of the explore notebook, parameterised for one study and wave.

    Parameters
    ----------
    study_yaml : path
        The study definition; checked (files, wave) before anything is written.
    wave : int, optional
        Wave to explore (default: the study's latest wave).
    out_dir : path
        Folder of the copy (created); the copy is ``out_dir/explore.ipynb``.
    notebook : path, optional
        Notebook to copy (default :data:`NOTEBOOK`).

    Returns
    -------
    Path
        The copy: outputs cleared, assertion cells (tagged ``remove-cell``, the notebook's own
        tests, one of which types a real ID) dropped, and an ``injected-parameters`` cell after
        the parameters cell with ``study_yaml`` (absolute) and ``wave``.

    Examples
    --------
    >>> import json, tempfile
    >>> from pathlib import Path
    >>> demo = Path(__file__).parents[1] / "data" / "demo" / "study.yaml"
    >>> copy = explore_notebook(demo, 2, out_dir=tempfile.mkdtemp())
    >>> cells = json.loads(copy.read_text())["cells"]
    >>> [c["metadata"].get("tags") for c in cells if "wave = 2" in "".join(c["source"])]
    [['injected-parameters']]
    """
    import warnings

    import nbformat
    from papermill.iorw import load_notebook_node
    from papermill.parameterize import parameterize_notebook

    from alliance_lib.study import load_study

    source = Path(notebook) if notebook is not None else NOTEBOOK
    if not source.is_file():
        raise AllianceError(
            f"{source.name}: explore notebook not found",
            file=source.name,
            hint="run `alliance explore` from a checkout of alliance_lib (notebooks/explore.ipynb)",
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the notebook shows the study's own warnings
        study = load_study(study_yaml)
    wave = study.waves[-1] if wave is None else int(wave)
    study.wave_files(wave)  # an undefined wave raises StudyError naming the defined ones
    nb = load_notebook_node(str(source))  # with the metadata papermill's parameterize reads
    nb.cells = [c for c in nb.cells if "remove-cell" not in c.metadata.get("tags", [])]
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    nb = parameterize_notebook(
        nb, {"study_yaml": str(Path(study_yaml).resolve()), "wave": wave}, kernel_name="python3"
    )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    target = out / "explore.ipynb"
    nbformat.write(nb, target)
    return target


def free_port(host: str = HOST) -> int:
    """A TCP port free on ``host`` right now (the OS picks it).

    Examples
    --------
    >>> 1024 <= free_port() <= 65535
    True
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _port_is_free(port: int, host: str = HOST) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
        return True


def voila_command(notebook: str | Path, *, port: int) -> list[str]:
    """The Voilà command line: this Python's voila, 127.0.0.1 only, one port, a token, no browser.

    The token itself is not on the command line (other users of the machine can list it): Voilà
    reads it from the ``JUPYTER_TOKEN`` environment variable, which :meth:`ExploreServer.start`
    sets.

    Examples
    --------
    >>> cmd = voila_command("x/explore.ipynb", port=8871)
    >>> cmd[1:4], "--Voila.ip=127.0.0.1" in cmd, "--no-browser" in cmd
    (['-m', 'voila', 'x/explore.ipynb'], True, True)
    """
    return [
        sys.executable,
        "-m",
        "voila",
        str(notebook),
        f"--port={int(port)}",
        f"--Voila.ip={HOST}",
        "--Voila.port_retries=0",  # the port asked for or an error, never another one
        "--Voila.auto_token=True",  # require a token: JUPYTER_TOKEN from the environment
        "--no-browser",  # serve() opens the address itself, once the server listens
        "--VoilaConfiguration.show_tracebacks=False",  # a traceback could show data values
        # the kernel talks to Voila over local sockets, not TCP ports (no port another kernel
        # starting at the same moment can take; nothing listening on the network)
        "--KernelManager.transport=ipc",
    ]


class ExploreServer:
    """Voilà serving the explore notebook for one study and wave, on 127.0.0.1.

    Parameters
    ----------
    study_yaml, wave, notebook
        As for :func:`explore_notebook`.
    port : int, optional
        Port on 127.0.0.1 (default: a free one).
    work_dir : path, optional
        Folder of the notebook copy (default: a new temporary folder, removed by :meth:`stop`).

    Attributes
    ----------
    url : str
        The app's address, with its access token (``http://127.0.0.1:PORT/?token=...``).
    notebook : Path
        The copy Voilà runs.

    Examples
    --------
    >>> from pathlib import Path
    >>> demo = Path(__file__).parents[1] / "data" / "demo" / "study.yaml"
    >>> with ExploreServer(demo, 3) as app:  # doctest: +SKIP
    ...     html = app.fetch(timeout=90)
    """

    def __init__(
        self,
        study_yaml: str | Path,
        wave: int | None = None,
        *,
        port: int | None = None,
        notebook: str | Path | None = None,
        work_dir: str | Path | None = None,
    ):
        if not _voila_installed():
            raise AllianceError(
                "voila is not installed",
                hint="install the lab extra: pip install 'alliance_lib[lab]' (or `make lab`)",
            )
        self._own_dir = work_dir is None
        self.work_dir = Path(
            tempfile.mkdtemp(prefix="alliance-explore-") if work_dir is None else work_dir
        )
        try:
            self.notebook = explore_notebook(
                study_yaml, wave, out_dir=self.work_dir, notebook=notebook
            )
        except BaseException:
            self._remove_dir()
            raise
        if port is not None and not _port_is_free(int(port)):
            self._remove_dir()
            raise AllianceError(
                f"port {port} on {HOST} is in use",
                value=port,
                hint="choose another with --port, or leave it out to use a free one",
            )
        self.port = int(port) if port is not None else free_port()
        self.token = secrets.token_urlsafe(24)
        self.url = f"http://{HOST}:{self.port}/?token={self.token}"
        self.process: subprocess.Popen | None = None

    def start(self) -> ExploreServer:
        """Start Voilà in the background (its own process group; output to ``voila.log``)."""
        import os

        log = open(self.work_dir / "voila.log", "wb")  # noqa: SIM115 (closed by the process)
        self.process = subprocess.Popen(
            voila_command(self.notebook, port=self.port),
            cwd=self.work_dir,
            # (not PYTEST_CURRENT_TEST: with it ipykernel skips its output redirection and the
            # app's kernel never answered Voila when the server ran inside a test)
            env={
                **{k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"},
                "JUPYTER_TOKEN": self.token,
            },
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log.close()
        return self

    def wait_listening(self, timeout: float = 60.0) -> None:
        """Wait until the server accepts connections on its port (or fail with its log)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise AllianceError(
                    f"voila stopped with status {self.process.returncode}: {self.log_tail()}",
                    hint="is the port in use? try another with --port",
                )
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                s.settimeout(1.0)
                if s.connect_ex((HOST, self.port)) == 0:
                    return
            time.sleep(0.2)
        raise AllianceError(f"voila did not listen on port {self.port} within {timeout:g} s")

    def fetch(self, timeout: float = 90.0, *, token: bool = True) -> str:
        """GET the rendered app page from 127.0.0.1 (Voilà runs the notebook before answering).

        ``timeout`` bounds the whole page, not each read: Voilà streams the page while the
        notebook runs, so a kernel that never runs it would otherwise keep the request open.
        """
        self.wait_listening(min(timeout, 60.0))
        url = self.url if token else self.url.split("?")[0]
        deadline = time.monotonic() + timeout
        chunks = []
        with urllib.request.urlopen(url, timeout=min(timeout, 30.0)) as resp:  # noqa: S310
            while True:
                if time.monotonic() > deadline:
                    raise AllianceError(
                        f"voila did not finish the page within {timeout:g} s: {self.log_tail()}",
                        hint="run `alliance explore` again (the notebook's kernel did not answer)",
                    )
                chunk = resp.read1(1 << 16)
                if not chunk:
                    break
                chunks.append(chunk)
        return b"".join(chunks).decode("utf-8", errors="replace")

    def log_tail(self, n: int = 5) -> str:
        path = self.work_dir / "voila.log"
        if not path.is_file():
            return ""
        lines = path.read_text(errors="replace").strip().splitlines()
        return " | ".join(lines[-n:])

    def stop(self, timeout: float = 15.0) -> None:
        """Stop Voilà (SIGTERM, then SIGKILL to its process group) and remove a temporary copy."""
        import os
        import signal

        proc, self.process = self.process, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)  # the group we started: voila + kernels
                except ProcessLookupError:
                    pass
                proc.wait(timeout)
        self._remove_dir()

    def _remove_dir(self) -> None:
        if self._own_dir:
            shutil.rmtree(self.work_dir, ignore_errors=True)

    def __enter__(self) -> ExploreServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def serve(
    study_yaml: str | Path,
    wave: int | None = None,
    *,
    port: int | None = None,
    open_browser: bool = True,
    notebook: str | Path | None = None,
) -> int:
    """Run the explore app until Voilà stops or Ctrl-C; returns Voilà's exit status (0 on Ctrl-C).

    The wave is prepared once first, so a bad study or file fails here with one clear message,
    before a server starts.
    """
    import warnings

    from alliance_lib.study import load_study
    from alliance_lib.waves import prepare_wave

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        study = load_study(study_yaml)
        prepare_wave(study, study.waves[-1] if wave is None else int(wave))
    app = ExploreServer(study_yaml, wave, port=port, notebook=notebook)
    previous = _stop_on_signals()
    try:
        app.start()
        app.wait_listening()
        print(f"{study.name}: explore app at {app.url} (Ctrl-C stops it)", flush=True)
        if open_browser:
            import webbrowser

            webbrowser.open(app.url)
        return app.process.wait() if app.process is not None else 0
    except KeyboardInterrupt:
        return 0
    finally:
        app.stop()
        _restore_signals(previous)


def _stop_on_signals() -> dict:
    """Ctrl-C, SIGTERM and a closed terminal (SIGHUP) all end :func:`serve` through its
    ``finally``, so Voilà (in its own session, out of reach of the terminal's signals) never
    outlives the command, even where the shell started it with SIGINT ignored."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return {}

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = {}
    for name in ("SIGINT", "SIGTERM", "SIGHUP"):
        sig = getattr(signal, name, None)
        if sig is not None:
            previous[sig] = signal.signal(sig, interrupt)
    return previous


def _restore_signals(previous: dict) -> None:
    import signal

    for sig, handler in previous.items():
        signal.signal(sig, handler)
