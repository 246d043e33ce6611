"""Shared test set-up: a non-interactive matplotlib backend, paths to bundled data, the demo wave-3
report run once per test session, and the grouping that lets ``make test`` run on two workers
(pytest-xdist, ``-n 2 --dist loadgroup``)."""

import json
import os
import stat
import tempfile
from contextlib import contextmanager
from pathlib import Path

import pytest

os.environ.setdefault("MPLBACKEND", "Agg")
# pseudonym keys created by tests go to a throw-away folder, never the user's config folder
# (one per process: every xdist worker has its own; the kernels it starts inherit it)
os.environ["ALLIANCE_KEY_DIR"] = tempfile.mkdtemp(prefix="alliance-test-keys-")
os.environ.pop("ALLIANCE_SALT", None)

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "data" / "demo"


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    import matplotlib.pyplot as plt

    plt.close("all")


@pytest.fixture
def demo_study_yaml() -> Path:
    return DEMO / "study.yaml"


# ------------------------------------------------------------------ parallel runs (pytest-xdist)
def _group(item) -> str | None:
    """The xdist group of a test: the tests that must share one worker.

    * every cell of a notebook run by nbval (they share one kernel, in order);
    * the tests of a module that use one of its module- or class-scoped fixtures (computed once,
      and some tests of a module build on the state a fixture left, in file order).
    """
    path = Path(str(item.path))
    if path.suffix == ".ipynb":
        return f"notebook:{path.name}"
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
        return None
    for name in info.names_closure:
        defs = info.name2fixturedefs.get(name)
        if defs and defs[-1].scope in ("module", "class", "package"):
            return f"module:{path.name}"
    return None


# xdist's own ``--dist loadgroup`` renames each grouped test's node id, which pytest 9.2 no longer
# reads (node ids are structured), so the groups are handed to the controller directly: every
# worker writes {node id: group} of its collection to a folder the controller named (an
# environment variable set before the workers start), and the controller's scheduler reads it.
_GROUPS_ENV = "ALLIANCE_TEST_XDIST_GROUPS"


def pytest_configure(config):
    controller = not hasattr(config, "workerinput") and config.getoption("dist", "no") != "no"
    if controller and config.getoption("dist") == "loadgroup":
        os.environ[_GROUPS_ENV] = tempfile.mkdtemp(prefix="alliance-xdist-groups-")


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    groups = {}
    for item in items:
        group = _group(item)
        if group is not None:
            item.add_marker(pytest.mark.xdist_group(group))
            groups[item.nodeid] = group
    worker = getattr(config, "workerinput", {}).get("workerid")
    if worker is None:
        return
    # longest first, so the two workers finish together: slow tests ahead of the rest (a stable
    # sort: the order within each tier is the collection order, the same on every worker)
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)
    folder = os.environ.get(_GROUPS_ENV)
    if folder:
        target = Path(folder, f"{worker}.json")
        target.with_suffix(".tmp").write_text(json.dumps(groups))
        target.with_suffix(".tmp").replace(target)  # complete before the collection is reported


@pytest.hookimpl(tryfirst=True, optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """``--dist loadgroup`` with the groups of :func:`_group` (read from the workers' files)."""
    folder = os.environ.get(_GROUPS_ENV)
    if config.getoption("dist") != "loadgroup" or not folder:
        return None
    from xdist.scheduler import LoadScopeScheduling

    class GroupScheduling(LoadScopeScheduling):
        _groups: dict | None = None

        def _split_scope(self, nodeid):
            if self._groups is None:  # called once every worker has collected
                self._groups = {}
                for path in sorted(Path(folder).glob("*.json")):
                    self._groups.update(json.loads(path.read_text()))
            return self._groups.get(nodeid, nodeid)

    return GroupScheduling(config, log)


@contextmanager
def _exclusive(lock: Path):
    """An exclusive lock on a file, held by one process (one xdist worker) at a time."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no workers to coordinate with a file lock
        yield
        return
    with open(lock, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@pytest.fixture(scope="session")
def demo_wave3_report(tmp_path_factory) -> Path:
    """The demo study's wave-3 report (``run_report(data/demo/study.yaml, 3)``), run once for the
    whole session and shared read-only by the tests that only read it (test_report.py,
    test_browser.py). Under xdist the first worker to ask runs it, the others wait and reuse it.
    Its files are made read-only, so a test that writes into it fails instead of changing what
    the others read."""
    from alliance_lib.report import run_report

    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent  # the session's folder, shared by the workers
    root = base / "shared-demo-wave3"
    done = base / "shared-demo-wave3.done"
    with _exclusive(base / "shared-demo-wave3.lock"):
        if not done.is_file():
            report = run_report(DEMO / "study.yaml", 3, root, quiet=True)
            for path in report.rglob("*"):
                if path.is_file():
                    path.chmod(stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
            done.write_text(str(report))
    return Path(done.read_text())
