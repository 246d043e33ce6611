"""The wave report: papermill runs the study-report notebook, nbconvert makes a code-free HTML.

A run writes ``<out>/<study-slug>/wave-<N>/`` (``<out>`` defaults to ``./reports``, in every mode).
It works in a temporary folder beside the target and replaces the wave folder only when
everything succeeded, so a failed or killed run never destroys the last good report. It never
deletes or overwrites a file it did not write: an existing wave folder is replaced only when it
holds an earlier report's ``provenance.json``, only the files that report listed are removed, and
anything else there stops the run with a message naming the folder and the foreign files. A failed
run keeps its executed notebook as ``wave-<N>.failed.ipynb`` beside the wave folder.
Every path in the outputs is relative to the study YAML (no user or folder names).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
import warnings
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

from alliance_lib._memory import release_memory, system_arrow_pool
from alliance_lib._version import __version__
from alliance_lib.errors import ReportError
from alliance_lib.study import Study, load_study
from alliance_lib.waves import PREPARED_NAME, prepare_wave, save_prepared

__all__ = ["run_report", "ReportError", "TEMPLATE", "report_dir", "report_files"]

# the template ships inside the package; notebooks/study_report.ipynb is the readable copy (a
# test keeps the two identical: edit the package copy, then `make template-copy`)
TEMPLATE = Path(__file__).resolve().parent / "templates" / "study_report.ipynb"
KERNEL = "python3"
OUTPUTS = (
    "report.ipynb",
    "report.html",
    "results.json",
    "provenance.json",
    "quarantine.csv",
)
#: folders of exported figures and tables a report may write
EXPORT_DIRS = ("figures", "tables", "tables.docx")
PACKAGES = (
    "alliance_lib",
    "numpy",
    "scipy",
    "pandas",
    "statsmodels",
    "matplotlib",
    "seaborn",
    "pyyaml",
    "papermill",
    "nbconvert",
    "nbformat",
    "ipykernel",
)


def report_dir(study: Study, wave: int, root: str | Path | None = None) -> Path:
    """Where a wave's report goes: ``<root>/<study-slug>/wave-<N>`` (root defaults to ./reports).

    Examples
    --------
    >>> from alliance_lib.study import load_study
    >>> study = load_study(Path(__file__).parents[1] / "data" / "demo" / "study.yaml")
    >>> report_dir(study, 3, "out").as_posix()
    'out/demo/wave-3'
    """
    root = Path(root) if root is not None else Path.cwd() / "reports"
    return root / study.slug / f"wave-{wave}"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _git(cwd: Path) -> dict[str, object]:
    """Commit and dirty flag of the git checkout holding ``cwd`` (None outside a checkout)."""

    def run(*args: str) -> subprocess.CompletedProcess | None:
        try:
            return subprocess.run(
                ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10, check=False
            )
        except (OSError, subprocess.SubprocessError):
            return None

    head = run("rev-parse", "HEAD")
    if head is None or head.returncode != 0:
        return {"commit": None, "dirty": None}
    status = run("status", "--porcelain", "--untracked-files=no")
    dirty = None if status is None or status.returncode != 0 else bool(status.stdout.strip())
    return {"commit": head.stdout.strip() or None, "dirty": dirty}


def _versions() -> dict[str, str | None]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    versions["alliance_lib"] = __version__
    versions["python"] = platform.python_version()
    return versions


def _relative(path: Path, base: Path) -> str:
    """``path`` relative to ``base`` (the study folder), with forward slashes."""
    return Path(os.path.relpath(Path(path).resolve(), base.resolve())).as_posix()


def _check_parameters(template: Path, parameters: dict) -> dict:
    """The template's declared parameters; every given one must be among them."""
    import papermill as pm

    declared = pm.inspect_notebook(str(template))
    unknown = sorted(set(parameters) - set(declared))
    if unknown:
        raise ReportError(
            f"{template.name}: unknown parameter(s) {', '.join(unknown)}; the notebook declares "
            f"{', '.join(declared)}"
        )
    return declared


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _files(folder: Path) -> list[str]:
    """Every file under ``folder``, relative, sorted (symlinks count as files, never followed)."""
    out = []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=False):
        rel = Path(dirpath).relative_to(folder)
        out += [(rel / f).as_posix() for f in filenames]
        out += [(rel / d).as_posix() for d in dirnames if (Path(dirpath) / d).is_symlink()]
    return sorted(out)


def report_files(folder: str | Path) -> list[str] | None:
    """The files an earlier report wrote into ``folder``, from its ``provenance.json``.

    ``None`` when the folder holds no readable report provenance (so it was not written by
    :func:`run_report`, and nothing in it may be removed).

    Examples
    --------
    >>> import tempfile
    >>> report_files(tempfile.mkdtemp()) is None
    True
    """
    prov = Path(folder) / "provenance.json"
    if not prov.is_file() or prov.is_symlink():
        return None
    try:
        data = json.loads(prov.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or "inputs_sha256" not in data:
        return None
    listed = data.get("outputs")
    if listed is None:  # provenance of reports written before outputs were listed
        listed = list(OUTPUTS)
    if not isinstance(listed, list) or not all(isinstance(x, str) for x in listed):
        return None
    return sorted(set(listed) | {"provenance.json"})


def _check_replaceable(target: Path, flag: str) -> list[str]:
    """The files of ``target`` that a new report may remove; stops when any is foreign."""
    if not target.exists() and not target.is_symlink():
        return []
    if target.is_symlink() or not target.is_dir():
        raise ReportError(
            f"{target.name} in {target.parent.name}/ exists and is not a report folder; "
            f"choose another {flag} or move it",
            file=target.name,
            hint=f"choose another {flag}",
        )
    present = _files(target)
    if not present:
        return []
    ours = report_files(target)
    foreign = present if ours is None else sorted(set(present) - set(ours))
    if foreign:
        shown = ", ".join(foreign[:8]) + (
            f" and {len(foreign) - 8} more" if len(foreign) > 8 else ""
        )
        why = (
            "holds no provenance.json of an earlier report"
            if ours is None
            else "holds files an earlier report did not write"
        )
        raise ReportError(
            f"{target.parent.name}/{target.name}/ {why}: {shown}. Nothing was changed; "
            f"choose another {flag} (it is the root that holds <study>/wave-<N>/) or move "
            "those files",
            file=f"{target.parent.name}/{target.name}",
            value=foreign[0],
            hint=f"choose another {flag}",
        )
    return present


def _remove_listed(folder: Path, files: list[str]) -> None:
    """Remove exactly ``files`` from ``folder``, then the folders they leave empty."""
    for rel in files:
        path = folder / rel
        if path.is_file() or path.is_symlink():
            path.unlink()
    for dirpath in sorted((w[0] for w in os.walk(folder)), key=len, reverse=True):
        if not any(Path(dirpath).iterdir()):
            Path(dirpath).rmdir()


def _ours_notebook(path: Path) -> bool:
    """A failed-run notebook this program wrote (papermill metadata of our template)."""
    try:
        nb = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(nb, dict) and "papermill" in nb.get("metadata", {})


def _ours_index(path: Path) -> bool:
    """An index page written by :func:`alliance_lib.exports.write_index`."""
    try:
        head = path.read_text(encoding="utf-8", errors="replace")[:4000]
    except OSError:
        return False
    return 'name="generator" content="alliance_lib' in head


def _remove_stale_staging(target: Path) -> None:
    """Remove staging folders left by killed runs (their process no longer exists and they hold
    nothing but report files and the wave handed to the kernel)."""
    for stale in target.parent.glob(f".{target.name}.tmp-*"):
        pid = stale.name.rsplit("-", 1)[-1]
        if not (pid.isdigit() and stale.is_dir() and not stale.is_symlink()):
            continue
        if _pid_alive(int(pid)):
            continue
        ours = (*OUTPUTS, *EXPORT_DIRS, PREPARED_NAME)
        if all(f.split("/")[0] in ours for f in _files(stale)):
            shutil.rmtree(stale, ignore_errors=True)


def _failure_paragraph(exc: Exception, failed: Path | None, shown_as: str) -> str:
    ename = getattr(exc, "ename", type(exc).__name__)
    evalue = getattr(exc, "evalue", str(exc))
    cell = getattr(exc, "cell_index", None)
    where = f"cell {cell}" if cell is not None else "a cell"
    kept = (
        f"The executed notebook was kept for inspection at {shown_as}; "
        if failed is not None
        else ""
    )
    return (
        f"The report notebook failed in {where} with {ename}: {evalue}. "
        f"{kept}the previous report (if any) is unchanged."
    )


_REMOTE = re.compile(
    r"<(script|link|img)\b[^>]*\b(?:src|href)\s*=\s*[\"']?(?:https?:)?//[^>]*>(?:\s*</script>)?",
    re.IGNORECASE,
)


def _self_contained(html: str) -> str:
    """Drop every element that would fetch a remote script, style or image when opened (nbconvert
    links require.js and MathJax from a CDN); the report embeds its figures and styles."""
    html = _REMOTE.sub("", html)
    return re.sub(r"@import\s+url\([\"']?https?://[^)]*\)\s*;?", "", html)


def _to_html(executed: Path, html: Path, title: str) -> None:
    import nbformat
    from nbconvert import HTMLExporter
    from nbconvert.preprocessors import TagRemovePreprocessor
    from traitlets.config import Config

    config = Config()
    config.TagRemovePreprocessor.remove_cell_tags = {"remove-cell", "injected-parameters"}
    config.TagRemovePreprocessor.remove_input_tags = {"remove-input"}
    config.TagRemovePreprocessor.enabled = True
    config.HTMLExporter.exclude_input = True
    config.HTMLExporter.exclude_input_prompt = True
    config.HTMLExporter.exclude_output_prompt = True
    exporter = HTMLExporter(config=config)
    exporter.register_preprocessor(TagRemovePreprocessor(config=config), enabled=True)
    nb = nbformat.read(str(executed), as_version=4)
    body, _ = exporter.from_notebook_node(nb, resources={"metadata": {"name": title}})
    html.write_text(_self_contained(body), encoding="utf-8")


def _scrub_paths(folder: Path, replacements: list[tuple[str, str]]) -> None:
    """Replace absolute paths (the study folder, the output root, the home folder, the Python
    prefix) in the text outputs of a run by relative or neutral forms."""
    pairs = [(a, b) for a, b in replacements if a and a not in ("/", ".")]
    pairs.sort(key=lambda ab: -len(ab[0]))
    for rel in _files(folder):
        path = folder / rel
        if path.suffix not in (".ipynb", ".html", ".json", ".csv", ".txt", ".svg", ".md"):
            continue
        text = path.read_text(encoding="utf-8", errors="surrogateescape")
        new = text
        for old, repl in pairs:
            new = new.replace(old, repl)
            escaped = json.dumps(old)[1:-1]
            if escaped != old:
                new = new.replace(escaped, json.dumps(repl)[1:-1])
        if new != text:
            path.write_text(new, encoding="utf-8", errors="surrogateescape")


def _fix_notebook_metadata(executed: Path, template_name: str) -> None:
    """Relative names in the executed notebook: papermill records the absolute input and output
    paths, and the injected ``out_dir`` is the staging folder (the notebook now sits in it), as
    was the handed-over ``prepared_wave`` (removed after the run)."""
    nb = json.loads(executed.read_text(encoding="utf-8"))
    pm_meta = nb.get("metadata", {}).get("papermill", {})
    if "input_path" in pm_meta:
        pm_meta["input_path"] = template_name
    if "output_path" in pm_meta:
        pm_meta["output_path"] = "report.ipynb"
    params = pm_meta.get("parameters")
    if isinstance(params, dict) and "out_dir" in params:
        params["out_dir"] = "."
    if isinstance(params, dict) and "prepared_wave" in params:
        params["prepared_wave"] = PREPARED_NAME  # it sat in this folder while the notebook ran
    for cell in nb.get("cells", []):
        if "injected-parameters" in cell.get("metadata", {}).get("tags", []):
            source = "".join(cell.get("source", ""))
            source = re.sub(r"(?m)^out_dir = .*$", 'out_dir = "."', source)
            source = re.sub(
                r"(?m)^prepared_wave = .*$", f'prepared_wave = "{PREPARED_NAME}"', source
            )
            cell["source"] = source
    executed.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def _log(message: str, quiet: bool) -> None:
    if not quiet:
        print(f"[alliance report] {message}", file=sys.stderr, flush=True)


def _wave_inputs(study: Study, wave: int) -> list[Path]:
    """Every data file the report of ``wave`` reads (wave over wave reads the earlier waves)."""
    files: list[Path] = []
    for w in study.waves:
        if w > wave:
            continue
        lister = getattr(study, "wave_files", None)
        files += list(lister(w)) if lister is not None else [study.data[w]]
    return files


def run_report(
    study_yaml: str | Path,
    wave: int | None = None,
    out_dir: str | Path | None = None,
    *,
    all_waves: bool = False,
    template: str | Path | None = None,
    progress_bar: bool | None = None,
    quiet: bool = False,
    timeout: int = 1800,
    out_flag: str = "out_dir",
) -> Path | list[Path]:
    """Run the study report for one wave (or every wave) of a study.

    Parameters
    ----------
    study_yaml : str or Path
        The study definition (see :mod:`alliance_lib.study`).
    wave : int, optional
        The wave to report (default: the latest wave).
    out_dir : str or Path, optional
        The root of the reports (default ``./reports``), in every mode: a wave's report goes to
        ``<out_dir>/<study-slug>/wave-<N>/``.
    all_waves : bool
        Report every wave in turn; returns the list of folders.
    template : str or Path, optional
        The report notebook (default: the template shipped in the package,
        ``alliance_lib/templates/study_report.ipynb``).
    progress_bar : bool, optional
        Papermill's progress bar (default: on when standard error is a terminal; plain log lines
        otherwise).
    quiet : bool
        No log lines.
    timeout : int
        Seconds any one cell may run.
    out_flag : str
        How messages name the output root (the command line passes ``--out``).

    Returns
    -------
    Path or list of Path
        The report folder holding ``report.ipynb``, ``report.html``, ``results.json``,
        ``provenance.json`` and ``quarantine.csv``.

    Raises
    ------
    StudyError
        The study YAML or a data file is unusable (message names the file and key).
    ReportError
        The wave folder holds files this program did not write (nothing is changed), or the
        notebook failed (the message says which cell and why, and where the failed notebook is).

    Notes
    -----
    Papermill executes, nbconvert only converts (``exclude_input`` plus removal of cells tagged
    ``remove-cell``). Parameters are passed as typed values, never through a shell, and relative
    to the study YAML, with the notebook run from the study's folder.

    References
    ----------
    papermill documentation, "Parameterize" and "Execute" (nteract/papermill).

    Examples
    --------
    >>> run_report("missing.yaml", 1)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    alliance_lib.study.StudyError: missing.yaml: file not found; give the path of a study YAML file
    """
    study = load_study(study_yaml)
    root = Path(out_dir) if out_dir is not None else Path.cwd() / "reports"
    options = dict(
        template=template,
        progress_bar=progress_bar,
        quiet=quiet,
        timeout=timeout,
        out_flag=out_flag,
    )
    if all_waves:
        for w in study.waves:  # every folder is checked before any report runs
            _check_replaceable(report_dir(study, w, root), _flag(out_flag))
        index = root / study.slug / "index.html"
        if index.exists() and not _ours_index(index):
            raise ReportError(
                f"{study.slug}/index.html exists and was not written by alliance report; "
                f"nothing was changed; choose another {_flag(out_flag)} or move it",
                file=f"{study.slug}/index.html",
                hint=f"choose another {_flag(out_flag)}",
            )
        paths = [_run_wave(study, w, root, **options) for w in study.waves]
        from alliance_lib.exports import write_index

        write_index(root, study, study.waves)
        return paths
    return _run_wave(study, wave, root, **options)


def _flag(out_flag: str) -> str:
    return out_flag if out_flag.startswith("-") else f"{out_flag}="


@system_arrow_pool()  # freed text columns go back to the system (this process and the kernel)
def _run_wave(
    study: Study,
    wave: int | None,
    root: Path,
    *,
    template: str | Path | None,
    progress_bar: bool | None,
    quiet: bool,
    timeout: int,
    out_flag: str,
) -> Path:
    flag = _flag(out_flag)
    wave = study.waves[-1] if wave is None else int(wave)
    target = report_dir(study, wave, root).resolve()
    base = study.path.parent
    template = Path(template).resolve() if template is not None else TEMPLATE
    if not template.is_file():
        raise ReportError(f"{template.name}: report template not found", file=str(template.name))
    replaceable = _check_replaceable(target, flag)
    # fail fast, before a kernel starts: an unknown wave, an unreadable file, a mapped column that
    # is absent, or a wave with no analysable row raise StudyError / DataError naming the file,
    # the key and the problem (the prepared wave is then handed to the notebook, below)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prepared = prepare_wave(study, wave)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # logged below, once
        key = study.pseudonym_key  # resolve (or create) the key before a kernel starts
    if key.created:
        _log(f"created a new random pseudonym key: {key.source}; keep it safe", quiet)
    for note in key.warnings:
        _log(f"privacy: {note}", quiet)
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_staging(target)
    staging = target.parent / f".{target.name}.tmp-{os.getpid()}"
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir()
    parameters = {
        "study_yaml": study.path.name,
        "wave": int(wave),
        "out_dir": _relative(staging, base),
        "seed": int(study.seed),
    }
    declared = _check_parameters(template, parameters)
    # the kernel takes the wave prepared here instead of reading and scoring it again (a
    # template that does not declare ``prepared_wave`` prepares its own)
    handoff = None
    if "prepared_wave" in declared:
        handoff = staging / PREPARED_NAME
        save_prepared(prepared, handoff)
        parameters["prepared_wave"] = _relative(handoff, base)
    del prepared
    release_memory()  # the kernel holds the wave now; this process waits for it
    started = datetime.now(UTC)
    t0 = time.perf_counter()
    if progress_bar is None:
        progress_bar = sys.stderr.isatty() and not quiet
    _log(f"{study.name}: wave {wave} -> {_shown(target)}", quiet)

    import papermill as pm

    executed = staging / "report.ipynb"
    try:
        pm.execute_notebook(
            str(template),
            str(executed),
            parameters=parameters,
            kernel_name=KERNEL,
            cwd=str(base),
            progress_bar=progress_bar,
            log_output=False,
            execution_timeout=timeout,
            report_mode=False,
            # the kernel only talks to us on localhost; keep its TCP notice out of the log
            extra_arguments=["--IPKernelApp.log_level=ERROR"],
        )
    except Exception as exc:  # papermill raises PapermillExecutionError and kernel errors
        if handoff is not None:
            handoff.unlink(missing_ok=True)
        failed = target.parent / f"{target.name}.failed.ipynb"
        if failed.exists() and not _ours_notebook(failed):
            failed = target.parent / f"{target.name}.failed-{os.getpid()}.ipynb"
        if executed.exists():
            shutil.move(str(executed), failed)
        else:
            failed = None
        shutil.rmtree(staging, ignore_errors=True)
        shown = _shown(failed) if failed is not None else ""
        raise ReportError(_failure_paragraph(exc, failed, shown), failed) from None
    if handoff is not None:
        handoff.unlink(missing_ok=True)  # ours, written above; never an output
    _log(f"notebook executed in {time.perf_counter() - t0:.1f} s; converting to HTML", quiet)
    _fix_notebook_metadata(executed, template.name)
    _to_html(executed, staging / "report.html", f"{study.name}: wave {wave} report")

    missing = [f for f in ("results.json", "quarantine.csv") if not (staging / f).is_file()]
    if missing:
        shutil.rmtree(staging, ignore_errors=True)
        raise ReportError(f"{template.name}: the notebook did not write {', '.join(missing)}")
    _scrub_paths(
        staging,
        [
            (str(staging) + "/", ""),
            (str(staging), "."),
            (str(base) + "/", ""),
            (str(base), "."),
            (str(Path(sys.prefix)), "<python>"),
            (str(Path(__file__).resolve().parents[1]), "<alliance_lib>"),
            (str(Path.home()), "~"),
        ],
    )
    inputs = {_relative(study.path, base): _sha256(study.path)}
    for file in _wave_inputs(study, wave):
        inputs[_relative(file, base)] = _sha256(file)
    template_key = (
        "alliance_lib/templates/study_report.ipynb"
        if template == TEMPLATE
        else _relative(template, base)
    )
    inputs[template_key] = _sha256(template)
    outputs = sorted(set(_files(staging)) | {"provenance.json"})
    library_git = _git(Path(__file__).parent)
    study_git = _git(base)
    provenance = {
        "study": study.name,
        "wave": wave,
        "paths_relative_to": "the folder of the study YAML",
        "inputs_sha256": inputs,
        "outputs": outputs,
        "parameters": {
            k: v for k, v in parameters.items() if k not in ("out_dir", "prepared_wave")
        },
        "prepared_once": handoff is not None,
        "seed": study.seed,
        "privacy": {"key_source": key.source, "small_cell": study.small_cell},
        "package_versions": _versions(),
        "git_commit": library_git["commit"],
        "git_dirty": library_git["dirty"],
        "study_git_commit": study_git["commit"],
        "study_git_dirty": study_git["dirty"],
        "platform": platform.platform(),
        "started_utc": started.isoformat(timespec="seconds"),
        "finished_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "wall_seconds": round(time.perf_counter() - t0, 2),
    }
    (staging / "provenance.json").write_text(
        json.dumps(provenance, indent=2) + "\n", encoding="utf-8"
    )
    # the folder may have changed while the notebook ran: check again, then swap
    replaceable = _check_replaceable(target, flag)
    backup = target.parent / f".{target.name}.old-{os.getpid()}"
    if target.exists():
        target.rename(backup)
    staging.rename(target)
    if backup.exists():
        _remove_listed(backup, replaceable)
        if backup.exists():
            _log(f"kept {_shown(backup)}: it holds files that appeared during the run", quiet)
    stale_failure = target.parent / f"{target.name}.failed.ipynb"
    if stale_failure.exists() and _ours_notebook(stale_failure):
        stale_failure.unlink()
    _log(f"done in {time.perf_counter() - t0:.1f} s: {', '.join(OUTPUTS)}", quiet)
    return target


def _shown(path: Path) -> str:
    """A path for log lines: relative to the working folder when below it, else with ``~``."""
    try:
        return Path(path).resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        try:
            return "~/" + Path(path).resolve().relative_to(Path.home().resolve()).as_posix()
        except ValueError:
            return str(path)
