"""The wave report: papermill runs the study-report notebook, nbconvert makes a code-free HTML.

A run writes into a temporary folder beside the target and replaces
``reports/<study-slug>/wave-<N>/`` only when everything succeeded, so a failed or killed run never
destroys the last good report. A failed run keeps its executed notebook as
``wave-<N>.failed.ipynb`` beside the report folder for inspection.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

from alliance_lib._version import __version__
from alliance_lib.errors import ReportError
from alliance_lib.study import Study, load_study
from alliance_lib.waves import read_wave

__all__ = ["run_report", "ReportError", "TEMPLATE", "report_dir"]

# the template ships inside the package; notebooks/study_report.ipynb is the readable copy (a
# test keeps the two identical: edit the package copy, then `make template-copy`)
TEMPLATE = Path(__file__).resolve().parent / "templates" / "study_report.ipynb"
KERNEL = "python3"
OUTPUTS = ("report.ipynb", "report.html", "results.json", "provenance.json", "quarantine.csv")
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
    """Where a wave's report goes: ``<root>/<study-slug>/wave-<N>`` (root defaults to ./reports)."""
    root = Path(root) if root is not None else Path.cwd() / "reports"
    return root / study.slug / f"wave-{wave}"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


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


def _parameters(study: Study, wave: int, out: Path) -> dict:
    return {
        "study_yaml": str(study.path),
        "wave": int(wave),
        "out_dir": str(out),
        "seed": int(study.seed),
    }


def _check_parameters(template: Path, parameters: dict) -> None:
    import papermill as pm

    declared = pm.inspect_notebook(str(template))
    unknown = sorted(set(parameters) - set(declared))
    if unknown:
        raise ReportError(
            f"{template}: unknown parameter(s) {', '.join(unknown)}; the notebook declares "
            f"{', '.join(declared)}"
        )


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_stale_staging(target: Path) -> None:
    """Remove staging folders left by killed runs (their process no longer exists)."""
    for stale in target.parent.glob(f".{target.name}.tmp-*"):
        pid = stale.name.rsplit("-", 1)[-1]
        if pid.isdigit() and not _pid_alive(int(pid)):
            shutil.rmtree(stale, ignore_errors=True)


def _failure_paragraph(exc: Exception, failed: Path) -> str:
    ename = getattr(exc, "ename", type(exc).__name__)
    evalue = getattr(exc, "evalue", str(exc))
    cell = getattr(exc, "cell_index", None)
    where = f"cell {cell}" if cell is not None else "a cell"
    return (
        f"The report notebook failed in {where} with {ename}: {evalue}. "
        f"The executed notebook was kept for inspection at {failed}; "
        f"the previous report (if any) is unchanged."
    )


def _to_html(executed: Path, html: Path) -> None:
    import nbformat
    from nbconvert import HTMLExporter
    from nbconvert.preprocessors import TagRemovePreprocessor
    from traitlets.config import Config

    config = Config()
    config.TagRemovePreprocessor.remove_cell_tags = {"remove-cell"}
    config.TagRemovePreprocessor.remove_input_tags = {"remove-input"}
    config.TagRemovePreprocessor.enabled = True
    config.HTMLExporter.exclude_input = True
    config.HTMLExporter.exclude_input_prompt = True
    config.HTMLExporter.exclude_output_prompt = True
    exporter = HTMLExporter(config=config)
    exporter.register_preprocessor(TagRemovePreprocessor(config=config), enabled=True)
    nb = nbformat.read(str(executed), as_version=4)
    body, _ = exporter.from_notebook_node(nb)
    html.write_text(body, encoding="utf-8")


def _log(message: str, quiet: bool) -> None:
    if not quiet:
        print(f"[alliance report] {message}", file=sys.stderr, flush=True)


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
) -> Path | list[Path]:
    """Run the study report for one wave (or every wave) of a study.

    Parameters
    ----------
    study_yaml : str or Path
        The study definition (see :mod:`alliance_lib.study`).
    wave : int, optional
        The wave to report (default: the latest wave).
    out_dir : str or Path, optional
        Folder for this wave's report (default ``./reports/<study-slug>/wave-<N>``). With
        ``all_waves`` it is the root that holds ``<slug>/wave-<N>`` folders.
    all_waves : bool
        Report every wave in turn; returns the list of folders.
    template : str or Path, optional
        The report notebook (default: ``notebooks/study_report.ipynb``).
    progress_bar : bool, optional
        Papermill's progress bar (default: on when standard error is a terminal; plain log lines
        otherwise).
    quiet : bool
        No log lines.
    timeout : int
        Seconds any one cell may run.

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
        The notebook failed; the message says which cell and why, and where the failed notebook is.

    Notes
    -----
    Papermill executes, nbconvert only converts (``exclude_input`` plus removal of cells tagged
    ``remove-cell``). Parameters are passed as typed values, never through a shell.

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
    if all_waves:
        root = Path(out_dir) if out_dir is not None else None
        return [
            run_report(
                study_yaml,
                w,
                report_dir(study, w, root) if root else None,
                template=template,
                progress_bar=progress_bar,
                quiet=quiet,
                timeout=timeout,
            )
            for w in study.waves
        ]
    wave = study.waves[-1] if wave is None else int(wave)
    # fail fast, before a kernel starts: unknown wave, unreadable file, absent id or covariate
    # columns raise StudyError / ReadError with the file and the problem
    read_wave(study, wave)
    target = Path(out_dir) if out_dir is not None else report_dir(study, wave)
    target = target.resolve()
    template = Path(template) if template is not None else TEMPLATE
    if not template.is_file():
        raise ReportError(f"{template}: report template not found")
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_staging(target)
    staging = target.parent / f".{target.name}.tmp-{os.getpid()}"
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir()
    parameters = _parameters(study, wave, staging)
    _check_parameters(template, parameters)
    started = datetime.now(UTC)
    t0 = time.perf_counter()
    if progress_bar is None:
        progress_bar = sys.stderr.isatty() and not quiet
    _log(f"{study.name}: wave {wave} -> {target}", quiet)

    import papermill as pm

    executed = staging / "report.ipynb"
    try:
        pm.execute_notebook(
            str(template),
            str(executed),
            parameters=parameters,
            kernel_name=KERNEL,
            cwd=str(template.parent),
            progress_bar=progress_bar,
            log_output=False,
            execution_timeout=timeout,
            report_mode=False,
            # the kernel only talks to us on localhost; keep its TCP notice out of the log
            extra_arguments=["--IPKernelApp.log_level=ERROR"],
        )
    except Exception as exc:  # papermill raises PapermillExecutionError and kernel errors
        failed = target.parent / f"{target.name}.failed.ipynb"
        if executed.exists():
            shutil.move(str(executed), failed)
        else:
            failed = None
        shutil.rmtree(staging, ignore_errors=True)
        raise ReportError(_failure_paragraph(exc, failed), failed) from None
    _log(f"notebook executed in {time.perf_counter() - t0:.1f} s; converting to HTML", quiet)
    _to_html(executed, staging / "report.html")

    missing = [f for f in ("results.json", "quarantine.csv") if not (staging / f).is_file()]
    if missing:
        shutil.rmtree(staging, ignore_errors=True)
        raise ReportError(f"{template}: the notebook did not write {', '.join(missing)}")
    inputs = {str(study.path): _sha256(study.path)}
    for w in study.waves:
        if w <= wave:
            inputs[str(study.data[w])] = _sha256(study.data[w])
    inputs[str(template.resolve())] = _sha256(template)
    provenance = {
        "study": study.name,
        "wave": wave,
        "inputs_sha256": inputs,
        "parameters": {k: v for k, v in parameters.items() if k != "out_dir"},
        "seed": study.seed,
        "package_versions": _versions(),
        "git_commit": _git_commit(),
        "python_executable": sys.executable,
        "platform": platform.platform(),
        "started_utc": started.isoformat(timespec="seconds"),
        "finished_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "wall_seconds": round(time.perf_counter() - t0, 2),
    }
    (staging / "provenance.json").write_text(
        json.dumps(provenance, indent=2) + "\n", encoding="utf-8"
    )
    backup = target.parent / f".{target.name}.old-{os.getpid()}"
    if target.exists():
        target.rename(backup)
    staging.rename(target)
    if backup.exists():
        shutil.rmtree(backup)
    stale_failure = target.parent / f"{target.name}.failed.ipynb"
    if stale_failure.exists():
        stale_failure.unlink()
    _log(f"done in {time.perf_counter() - t0:.1f} s: {', '.join(OUTPUTS)}", quiet)
    return target
