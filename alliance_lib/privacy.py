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
    "collision_free_length",
    "pseudonym_length",
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


#: Hex digits of a pseudonym: the shortest of these that keeps collisions unlikely (see
#: :func:`pseudonym_length`); every length is a prefix of the next, under the same key.
PSEUDONYM_LENGTHS = (8, 12, 16, 24, 32, 64)
#: Expected number of colliding pairs a default length may carry (birthday bound).
MAX_EXPECTED_COLLISIONS = 0.01


def pseudonym_length(
    n_ids: int, *, max_expected_collisions: float = MAX_EXPECTED_COLLISIONS
) -> int:
    """Hex digits a pseudonym needs for ``n_ids`` identifiers.

    The shortest length in :data:`PSEUDONYM_LENGTHS` whose expected number of colliding pairs,
    ``n (n - 1) / 2 / 16**length`` (the birthday bound), is at most ``max_expected_collisions``:
    8 digits up to 9,268 IDs, 12 up to 2.37 million, 16 up to 607 million.

    Parameters
    ----------
    n_ids : int
        Number of distinct identifiers to pseudonymise.
    max_expected_collisions : float
        Tolerated expected number of colliding pairs (default 0.01).

    Returns
    -------
    int
        Hex digits to keep.

    Notes
    -----
    A shorter pseudonym is the first digits of a longer one of the same ID under the same key
    (both are prefixes of one HMAC), so a study that outgrows 8 digits between waves keeps its
    earlier pseudonyms as prefixes of the new ones. Fix the length for the life of a study with
    ``privacy.pseudonym_length`` in the study YAML.

    References
    ----------
    Menezes, A. J., van Oorschot, P. C., & Vanstone, S. A. (1996). *Handbook of applied
    cryptography* (section 2.1.5, the birthday problem). CRC Press.

    Examples
    --------
    >>> pseudonym_length(300), pseudonym_length(100_000), pseudonym_length(20_000_000)
    (8, 12, 16)
    """
    n = float(max(int(n_ids), 0))
    pairs = n * (n - 1.0) / 2.0
    for length in PSEUDONYM_LENGTHS:
        if pairs / 16.0**length <= max_expected_collisions:
            return length
    return PSEUDONYM_LENGTHS[-1]


def pseudonymise(
    ids: pd.Series, *, salt: str, prefix: str = "C", length: int | None = None
) -> pd.Series:
    """Replace identifiers by stable keyed-hash pseudonyms.

    Parameters
    ----------
    ids : Series
        Raw identifiers (any type; compared as text). Missing values stay missing.
    salt : str
        The study's secret key. The same salt gives the same pseudonyms in every wave.
    prefix : str
        Prefix of the pseudonym, e.g. ``"C"`` for clients and ``"T"`` for therapists.
    length : int, optional
        Hex digits kept (4 to 64). By default the shortest length of
        :data:`PSEUDONYM_LENGTHS` that suits the number of distinct IDs
        (:func:`pseudonym_length`), one step longer when the IDs still collide. A given length
        that collides raises :class:`~alliance_lib.errors.DefinitionError`.

    Returns
    -------
    Series
        Pseudonyms such as ``"C-3fa94c1e"``, aligned with ``ids`` (object dtype, missing as None).

    Notes
    -----
    HMAC-SHA-256 (RFC 2104) of the UTF-8 ID keyed by the salt, truncated to ``length`` hex
    digits. Only distinct IDs are hashed (the rows take them by their factor codes), so the cost
    grows with the number of clients, not rows. A shorter pseudonym is a prefix of a longer one.

    References
    ----------
    Krawczyk, H., Bellare, M., & Canetti, R. (1997). HMAC: Keyed-hashing for message
    authentication. RFC 2104.

    Examples
    --------
    >>> s = pd.Series(["CL-0001", "CL-0002", "CL-0001"])
    >>> p = pseudonymise(s, salt="k")
    >>> p.iloc[0] == p.iloc[2], p.iloc[0] != p.iloc[1], p.iloc[0][:2], len(p.iloc[0])
    (True, True, 'C-', 10)
    >>> pseudonymise(s, salt="k", length=16).iloc[0].startswith(p.iloc[0])
    True
    """
    codes, uniques = pd.factorize(ids.astype("string"), sort=False)
    digests = _digests(uniques, salt)
    if length is not None and not 4 <= int(length) <= 64:
        raise DefinitionError(
            f"a pseudonym length must be 4 to 64 hex digits, not {length!r}",
            column="privacy.pseudonym_length",
            value=length,
        )
    k = _free_length(digests, length)
    table = np.array([f"{prefix}-{h[:k]}" for h in digests] + [None], dtype=object)
    return pd.Series(table[codes], index=ids.index, dtype=object)


def _digests(uniques, salt: str) -> list[str]:
    """HMAC-SHA-256 hex digests of distinct IDs (as text) under the key ``salt``."""
    key = salt.encode("utf-8")
    digest = hmac.digest  # one-shot HMAC in C (the same bytes as hmac.new(...).hexdigest())
    return [digest(key, str(u).encode("utf-8"), "sha256").hex() for u in uniques]


def _free_length(digests: list[str], length: int | None = None, *, at_least: int = 0) -> int:
    """``length`` when the digests do not collide in it (else DefinitionError); without a
    length, the first of :data:`PSEUDONYM_LENGTHS` from :func:`pseudonym_length` (and at least
    ``at_least``) in which they do not collide."""
    if length is not None:
        candidates = [int(length)]
    else:
        shortest = max(pseudonym_length(len(digests)), at_least)
        candidates = [k for k in PSEUDONYM_LENGTHS if k >= shortest] or [PSEUDONYM_LENGTHS[-1]]
    for k in candidates:
        if len({d[:k] for d in digests}) == len(digests):
            return k
    raise DefinitionError(
        f"{len(digests):,} IDs collide in {candidates[-1]} hex digits under this key",
        column="privacy.pseudonym_length",
        value=candidates[-1],
        hint="set a longer privacy.pseudonym_length in the study YAML (up to 64)",
    )


def collision_free_length(kinds, salt: str) -> int:
    """One pseudonym length for several kinds of ID (clients, therapists, raters) of one wave.

    The shortest of :data:`PSEUDONYM_LENGTHS` that suits the most numerous kind
    (:func:`pseudonym_length`) and in which no kind collides under the key.

    Parameters
    ----------
    kinds : iterable of array-like
        The IDs of each kind (duplicates and missing values allowed).
    salt : str
        The study's secret key.

    Returns
    -------
    int

    Examples
    --------
    >>> collision_free_length([["a", "b", "a"], ["T1"]], salt="secret-key")
    8
    """
    digests = []
    for ids in kinds:
        u = pd.unique(pd.Series(ids, dtype=object).dropna().astype(str))
        digests.append(_digests([x for x in u if x != ""], salt))
    length = pseudonym_length(max((len(d) for d in digests), default=0))
    for d in digests:
        length = _free_length(d, at_least=length)
    return length


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
