"""Pseudonymous identifiers, the secret key behind them, and small-cell suppression for reports.

Client and therapist IDs leave the library only as keyed hashes: HMAC-SHA-256 of the raw ID under
the study's secret key, so the same client keeps the same pseudonym across waves of one study, and
the pseudonym cannot be recomputed without the key. The key never derives from the study: it comes
from ``privacy.salt`` in the study YAML, else the environment variable ``ALLIANCE_SALT``, else the
key file named by ``privacy.key_file``, else the study's key file in the user's configuration
folder (created with a random key on first use, and the run says where). See
:func:`resolve_key`.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import subprocess
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from alliance_lib.errors import DefinitionError

__all__ = [
    "PseudonymKey",
    "PrivacyWarning",
    "create_key_file",
    "default_key_file",
    "pseudonymise",
    "resolve_key",
    "suppress_small_cells",
]

#: Environment variable holding the pseudonym key (takes precedence over key files).
KEY_ENV = "ALLIANCE_SALT"
#: Environment variable naming the folder of per-study key files (default: the config folder).
KEY_DIR_ENV = "ALLIANCE_KEY_DIR"


class PrivacyWarning(UserWarning):
    """A privacy setting that works but weakens the protection (e.g. a key tracked by git)."""


@dataclass(frozen=True)
class PseudonymKey:
    """The secret key of a study's pseudonyms and where it came from.

    Attributes
    ----------
    key : str
        The secret (never printed: it is left out of ``repr``).
    source : str
        Where it came from, in words for the data-quality section (no secret, no absolute path
        under the user's home: ``~`` stands for it).
    created : bool
        A new random key file was created by this call.
    warnings : tuple of str
        Weaknesses of the setting (e.g. the key sits in a file tracked by git).
    """

    key: str = field(repr=False)
    source: str
    created: bool = False
    warnings: tuple[str, ...] = ()


def _display(path: Path) -> str:
    """A path for messages and outputs: the home folder shown as ``~``."""
    try:
        return "~/" + str(path.resolve().relative_to(Path.home().resolve()))
    except ValueError:
        return str(path)


def _tracked_by_git(path: Path) -> bool:
    try:
        out = subprocess.run(
            ["git", "ls-files", "--error-unmatch", path.name],
            cwd=path.parent,
            capture_output=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return out.returncode == 0


def default_key_file(slug: str, env: dict | None = None) -> Path:
    """Where a study's key file lives when the study names none.

    ``$ALLIANCE_KEY_DIR/<slug>.key``, else ``$XDG_CONFIG_HOME/alliance_lib/keys/<slug>.key``
    (default ``~/.config/alliance_lib/keys/<slug>.key``): outside any study folder, so copying
    or sharing the study does not share the key.

    Examples
    --------
    >>> default_key_file("demo").name
    'demo.key'
    """
    env = os.environ if env is None else env
    folder = env.get(KEY_DIR_ENV)
    if not folder:
        config = env.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
        folder = str(Path(config) / "alliance_lib" / "keys")
    return Path(folder).expanduser() / f"{slug}.key"


def create_key_file(path: str | Path) -> Path:
    """Write a new random key (256 bits, hex) to ``path``, readable by the owner only.

    Refuses to overwrite an existing file (a lost key cannot be recovered: pseudonyms of later
    waves would no longer match earlier ones).

    Examples
    --------
    >>> import tempfile
    >>> p = create_key_file(Path(tempfile.mkdtemp()) / "study.key")
    >>> len(p.read_text().strip()), oct(p.stat().st_mode & 0o777)
    (64, '0o600')
    """
    path = Path(path).expanduser()
    if path.exists():
        raise DefinitionError(
            f"{_display(path)}: a key file already exists; it is never overwritten",
            file=_display(path),
            hint="use it as it is, or name another file",
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(secrets.token_hex(32) + "\n")
    return path


def _read_key_file(path: Path, study_file: str) -> str:
    if not path.is_file():
        raise DefinitionError(
            f"{study_file}, key 'privacy.key_file': key file {_display(path)} does not exist",
            file=study_file,
            column="privacy.key_file",
            hint="create one with `alliance key STUDY.yaml --create`, or fix the path",
        )
    key = path.read_text(encoding="utf-8").strip()
    if len(key) < 16:
        raise DefinitionError(
            f"{_display(path)}: the key is shorter than 16 characters",
            file=_display(path),
            hint="use `alliance key STUDY.yaml --create` for a random key",
        )
    return key


def resolve_key(study, *, create: bool = True, env: dict | None = None) -> PseudonymKey:
    """Find the secret key of a study's pseudonyms.

    Parameters
    ----------
    study : Study
        A loaded study (:func:`alliance_lib.study.load_study`).
    create : bool
        With no key configured, create a random key file at :func:`default_key_file` (and say
        so in ``source``); with ``False`` refuse with a message that says how to set one.
    env : mapping, optional
        Environment to read (default ``os.environ``).

    Returns
    -------
    PseudonymKey

    Notes
    -----
    Order: ``privacy.salt`` in the study YAML (kept working, with a :class:`PrivacyWarning`
    when git tracks the YAML), the environment variable ``ALLIANCE_SALT``, the file named by
    ``privacy.key_file``, then the study's key file in the configuration folder. The key never
    derives from the study's name or contents, so pseudonyms cannot be recomputed from the study
    file alone (an ID scheme such as ``P001..P040`` is easy to enumerate).

    Examples
    --------
    >>> from alliance_lib.study import load_study
    >>> study = load_study(Path(__file__).parents[1] / "data" / "demo" / "study.yaml")
    >>> resolve_key(study).source
    'privacy.salt in study.yaml'
    """
    env = os.environ if env is None else env
    study_file = Path(study.path).name
    notes: list[str] = []
    if study.salt_configured:
        if _tracked_by_git(Path(study.path)):
            notes.append(
                f"the pseudonym key is written in {study_file}, which git tracks: anyone with the "
                f"repository can recompute the pseudonyms; move it to the {KEY_ENV} environment "
                "variable or a key file outside the study folder"
            )
        result = PseudonymKey(study.salt_configured, f"privacy.salt in {study_file}", False)
    elif env.get(KEY_ENV):
        result = PseudonymKey(env[KEY_ENV], f"environment variable {KEY_ENV}")
    elif study.key_file is not None:
        path = Path(study.key_file)
        key = _read_key_file(path, study_file)
        if _tracked_by_git(path):
            notes.append(
                f"the key file {path.name} is tracked by git; keep it out of the repository"
            )
        try:
            path.resolve().relative_to(Path(study.path).resolve().parent)
            notes.append(
                f"the key file {path.name} is inside the study folder: sharing the folder "
                "shares the key; keep it elsewhere"
            )
        except ValueError:
            pass
        result = PseudonymKey(key, f"key file {_display(path)} (privacy.key_file)")
    else:
        path = default_key_file(study.slug, env)
        created = False
        if not path.is_file():
            if not create:
                raise DefinitionError(
                    f"{study_file}: no pseudonym key is configured",
                    file=study_file,
                    column="privacy",
                    hint=(
                        f"set the {KEY_ENV} environment variable, name a key file outside the "
                        "study folder as 'privacy: {key_file: PATH}', or create one with "
                        "`alliance key STUDY.yaml --create`"
                    ),
                )
            create_key_file(path)
            created = True
        key = _read_key_file(path, study_file)
        verb = "created" if created else "in"
        result = PseudonymKey(
            key, f"key file {_display(path)} ({verb} the configuration folder)", created
        )
    for note in notes:
        warnings.warn(note, PrivacyWarning, stacklevel=2)
    return PseudonymKey(result.key, result.source, result.created, tuple(notes))


def pseudonymise(ids: pd.Series, *, salt: str, prefix: str = "C", length: int = 8) -> pd.Series:
    """Replace identifiers by stable keyed-hash pseudonyms.

    Parameters
    ----------
    ids : Series
        Raw identifiers (any type; compared as text). Missing values stay missing.
    salt : str
        The study's secret key. The same salt gives the same pseudonyms in every wave.
    prefix : str
        Prefix of the pseudonym, e.g. ``"C"`` for clients and ``"T"`` for therapists.
    length : int
        Hex digits kept (8 digits: collisions are checked and raise).

    Returns
    -------
    Series
        Pseudonyms such as ``"C-3fa94c1e"``, aligned with ``ids``.

    Notes
    -----
    HMAC-SHA-256 (RFC 2104) of the UTF-8 ID keyed by the salt. Only unique IDs are hashed, so the
    cost grows with the number of clients, not rows.

    References
    ----------
    Krawczyk, H., Bellare, M., & Canetti, R. (1997). HMAC: Keyed-hashing for message
    authentication. RFC 2104.

    Examples
    --------
    >>> s = pd.Series(["CL-0001", "CL-0002", "CL-0001"])
    >>> p = pseudonymise(s, salt="k")
    >>> p.iloc[0] == p.iloc[2], p.iloc[0] != p.iloc[1], p.iloc[0][:2]
    (True, True, 'C-')
    """
    values = ids.astype("string")
    uniques = pd.unique(values.dropna())
    key = salt.encode("utf-8")
    mapping = {
        u: f"{prefix}-" + hmac.new(key, str(u).encode("utf-8"), hashlib.sha256).hexdigest()[:length]
        for u in uniques
    }
    if len(set(mapping.values())) != len(mapping):
        raise ValueError("pseudonym collision: increase `length`")
    return values.map(mapping).astype(object).where(values.notna(), None)


def suppress_small_cells(
    table: pd.DataFrame, *, count: str, threshold: int, columns: list[str] | None = None
) -> pd.DataFrame:
    """Blank out rows of a display table whose count is below the small-cell threshold.

    Parameters
    ----------
    table : DataFrame
        One row per group (e.g. per therapist).
    count : str
        Column holding the group's size (e.g. number of clients).
    threshold : int
        Rows with ``count < threshold`` are suppressed.
    columns : list of str, optional
        Columns to blank (default: every column except the count).

    Returns
    -------
    DataFrame
        A copy with the suppressed values set to missing and a boolean ``suppressed`` column.

    Examples
    --------
    >>> t = pd.DataFrame({"therapist": ["T-1", "T-2"], "n_clients": [2, 9], "rate": [0.5, 0.2]})
    >>> suppress_small_cells(t, count="n_clients", threshold=5)["rate"].tolist()
    [nan, 0.2]
    """
    out = table.copy()
    small = out[count].to_numpy() < threshold
    cols = columns if columns is not None else [c for c in out.columns if c != count]
    for col in cols:
        if pd.api.types.is_numeric_dtype(out[col]):
            out[col] = out[col].astype(float).where(~small, np.nan)
        else:
            out[col] = out[col].astype(object).where(~small, None)
    out["suppressed"] = small
    return out
