"""``alliance init DATA...``: a draft study YAML from the headers of the data files.

Like jamovi's import, :func:`draft_study` looks at each file's columns and guesses what they are:
the client, therapist, session, date and rater columns, numbered item columns of a known
instrument (``Q2_1 .. Q2_12`` -> 12 items: WAI-SR), a wide layout (``wai3_s5``), a client-level
file (one row per client, no session), a REDCap or Qualtrics export. Every guess is written with a
``# REVIEW`` comment naming what it was based on, so the researcher checks each one; nothing is
guessed silently. The draft loads with :func:`alliance_lib.study.load_study` as it is.
"""

from __future__ import annotations

import csv
import os
import re
from pathlib import Path

import pandas as pd

from alliance_lib.io import read_table

__all__ = ["draft_study", "write_draft"]

ALLIANCE_IDS = ("wai-sr", "wai-s", "wai", "haq-ii", "srs")
_ROLE_PATTERNS = {
    "client": r"^(client|patient|participant|record|pathway|subject|person)?[ _-]?(id|number|no|nr)$|^(client|record_id|pathwayid)$",
    "therapist": r"therapist|clinician|counsel+or|practitioner",
    "session": r"^(session|sess|appointment|appt|visit|session_number)$",
    "date": r"date|completed|timestamp|when",
    "rater": r"^(rater|informant|respondent_type)$",
}
_RATER_ID = r"^(coder|rater_id|observer|observer_id|coder_id|interpreter_id)$"


def _header(path: Path) -> tuple[pd.DataFrame, str]:
    """A sample of the file (its columns and first rows) and its kind: file, redcap or qualtrics."""
    if path.suffix.lower() in (".csv", ".tsv", ".txt"):
        with open(path, encoding="utf-8-sig", newline="") as handle:
            rows = [r for _, r in zip(range(3), csv.reader(handle), strict=False)]
        if len(rows) == 3 and any(c.startswith('{"ImportId"') for c in rows[2]):
            from alliance_lib.qualtrics import read_qualtrics

            return read_qualtrics(path, responses="all"), "qualtrics"
        if rows and rows[0] and {"redcap_event_name", "redcap_repeat_instrument"} & set(rows[0]):
            return read_table(path, id_columns=[rows[0][0]]), "redcap"
        if rows and rows[0] and rows[0][0].strip() == "Variable / Field Name":
            return pd.DataFrame(), "dictionary"
    return read_table(path), "file"


def _find(columns: list[str], role: str) -> str | None:
    regex = re.compile(_ROLE_PATTERNS[role], re.IGNORECASE)
    hits = [c for c in columns if regex.search(str(c).strip())]
    return hits[0] if hits else None


def _item_groups(columns: list[str]) -> dict[str, list[int]]:
    """Stem -> item numbers for numbered columns (``Q2_3`` -> stem ``Q2_``, 3)."""
    groups: dict[str, list[int]] = {}
    for c in columns:
        m = re.fullmatch(r"(.*?[A-Za-z_])(\d+)", str(c))
        if m:
            groups.setdefault(m.group(1), []).append(int(m.group(2)))
    return groups


def _guess_instruments(columns: list[str]) -> list[tuple[str, str, str]]:
    """(instrument id, pattern, why) for numbered column groups that fit an instrument."""
    from alliance_lib.registry import list_instruments

    table = list_instruments()
    out = []
    for stem, numbers in _item_groups(columns).items():
        n = len(set(numbers))
        if sorted(set(numbers)) != list(range(1, n + 1)) or n < 4 or stem.endswith("___"):
            continue  # not 1..n, too few, or REDCap checkbox options (field___1 ...)
        key = re.sub(r"[^a-z0-9]", "", stem.lower())
        fits = table[table["n_items"] == n]
        named = fits[
            fits["id"].str.replace(r"[^a-z0-9]", "", regex=True).eq(key)
            | fits["prefix"].str.replace("_", "").eq(key)
        ]
        if len(named):
            ident, why = named["id"].iloc[0], f"columns {stem}1..{stem}{n} are named after it"
        elif len(fits) and n >= 7:  # a short scale is guessed only when named after
            ident = fits["id"].iloc[-1] if "wai-sr" not in set(fits["id"]) else "wai-sr"
            others = [i for i in fits["id"] if i != ident]
            why = f"{n} numbered columns {stem}1..{stem}{n}" + (
                f"; other {n}-item instruments: {', '.join(others)}" if others else ""
            )
        else:
            continue
        out.append((ident, f"{stem}{{n}}", why))
    return out


def _wide(columns: list[str]) -> bool:
    return sum(bool(re.fullmatch(r".+_s\d+", str(c))) for c in columns) >= 4


def _quote(text: str) -> str:
    return '"' + str(text).replace("\\", "\\\\").replace('"', '\\"') + '"'


def draft_study(paths, *, name: str | None = None, base: str | Path | None = None) -> str:
    """A draft study YAML (text) for the given data files, every guess marked ``# REVIEW``.

    Parameters
    ----------
    paths : sequence of str or Path
        The data files of one wave (csv, tsv, xlsx, sav, parquet; REDCap and Qualtrics exports
        are recognised).
    name : str, optional
        The study's name (default "Draft study").
    base : str or Path, optional
        Folder the YAML will live in; file names are written relative to it (default: the
        folder of the first file).

    Returns
    -------
    str
        YAML text, loadable by :func:`alliance_lib.study.load_study`.

    Examples
    --------
    >>> from pathlib import Path
    >>> here = Path(__file__).parents[1] / "tests" / "data" / "intake" / "qualtrics"
    >>> text = draft_study([here / "qualtrics_wai_sr.csv"])
    >>> print("\\n".join(line for line in text.splitlines() if "items" in line))
            items: {wai-sr: "Q2_{n}"}  # REVIEW: 12 numbered columns Q2_1..Q2_12; other 12-item instruments: wai-s
    """
    paths = [Path(p) for p in paths]
    base = Path(base) if base is not None else paths[0].resolve().parent
    sources, instruments = [], {}
    dated_session_file = None
    infos = []
    dictionary = None
    for path in paths:
        df, kind = _header(path)
        if kind == "dictionary":  # a REDCap data dictionary: attached to the REDCap sources
            dictionary = path
            continue
        cols = [str(c) for c in df.columns]
        infos.append((path, df, kind, cols))
        if kind == "file" and _find(cols, "session") and _find(cols, "date"):
            dated_session_file = dated_session_file or path
    for path, df, kind, cols in infos:
        rel = Path(os.path.relpath(path.resolve(), base.resolve())).as_posix()
        lines = [f"      - {kind}: {_quote(rel)}"]
        if kind == "redcap" and dictionary is not None:
            d_rel = Path(os.path.relpath(dictionary.resolve(), base.resolve())).as_posix()
            lines.append(f"        dictionary: {_quote(d_rel)}")
        roles = {r: _find(cols, r) for r in _ROLE_PATTERNS}
        if kind == "redcap":
            roles["client"] = None  # the record id, always the first column
            roles["session"] = None
            if "redcap_repeat_instrument" in cols:
                date = _find(cols, "date")
                lines.append(
                    f"        session_from: {{date: {date or 'FIELD'}}}  # REVIEW: repeat instances "
                    "are in entry order; sessions follow this date field"
                )
            else:
                lines.append(
                    "        session_from: event  # REVIEW: session_N events -> N, intake -> 0"
                )
                lines.append("        intake_events: [intake]  # REVIEW")
        if kind == "redcap":
            roles["date"] = None  # survey timestamps hold "[not completed]"; map one by hand
        if kind == "qualtrics":
            cols = [c for c in cols if c not in ("client_id", "session")]  # added by the reader
            book = df.attrs.get("codebook", {})
            asks_id = [
                c
                for c in cols
                if re.search(r"client|participant|\bid\b|number", book.get(c, ""), re.I)
                and re.fullmatch(r"Q[\d_]+", c)
            ]
            roles = {r: _find(cols, r) for r in _ROLE_PATTERNS}
            roles["client"] = asks_id[0] if asks_id else roles["client"]
            roles["session"] = roles["session"] or ("sess" if "sess" in cols else None)
            roles["date"] = None
        wide = kind == "file" and _wide(cols)
        n_rows = len(df)
        one_per_client = (
            roles["client"] is not None
            and df[roles["client"]].notna().all()
            and df[roles["client"]].nunique() == n_rows
        )
        client_level = kind == "file" and not wide and roles["session"] is None and one_per_client
        if client_level:
            lines.append(
                "        level: client  # REVIEW: one row per client and no session column"
            )
            roles = {k: v for k, v in roles.items() if k in ("client", "therapist")}
        mapped = {k: v for k, v in roles.items() if v is not None}
        if wide:
            lines.append("        layout: wide  # REVIEW: per-session columns named *_s<session>")
            lines.append('        pattern: "{column}_s{session}"  # REVIEW')
            mapped.pop("session", None)
            mapped.pop("date", None)
        if mapped:
            body = ", ".join(f"{k}: {_quote(v)}" for k, v in mapped.items())
            lines.append(f"        columns: {{{body}}}  # REVIEW: guessed from the column names")
        rid = next((c for c in cols if re.fullmatch(_RATER_ID, c, re.IGNORECASE)), None)
        if rid and not client_level:
            role = "interpreter" if "interpreter" in rid.lower() else "observer"
            lines.append(f"        rater: {role}  # REVIEW: the file names its raters ({rid})")
            lines.append(f"        rater_id: {rid}  # REVIEW")
            lines.append("        combine: mean  # REVIEW: or keep (one row per rater)")
        elif not client_level and "rater" not in mapped:
            low = path.stem.lower()
            role = next((r for r in ("therapist", "observer", "interpreter") if r in low), "client")
            lines.append(f"        rater: {role}  # REVIEW: from the file name")
        if (
            kind == "file"
            and not client_level
            and not wide
            and roles.get("session") is None
            and roles.get("date") is not None
        ):
            if dated_session_file is not None and dated_session_file != path:
                lines.append(
                    f"        session_from: {{date: {_quote(roles['date'])}, match: "
                    f"{_quote(dated_session_file.name)}, within_days: 3}}  # REVIEW: no session "
                    "column; sessions from the date of the other file's sessions"
                )
            else:
                lines.append(
                    f"        session_from: {{date: {_quote(roles['date'])}}}  # REVIEW: no "
                    "session column; sessions numbered in date order"
                )
            mapped.pop("date", None)
        if roles.get("session") and str(roles["session"]).lower().startswith("app"):
            lines.append(
                "        session_offset: -1  # REVIEW: numbered by appointment; is appointment 1 "
                "an assessment (session 0)?"
            )
        if roles.get("date") and kind == "file" and not client_level:
            sample = df[roles["date"]].dropna().astype(str).head(20)
            if sample.str.fullmatch(r"\d{1,2}/\d{1,2}/\d{4}").all() and len(sample):
                first = sample.str.split("/").str[0].astype(int)
                fmt = "%d/%m/%Y" if (first > 12).any() else "%m/%d/%Y"
                lines.append(
                    f'        date_format: "{fmt}"  # REVIEW: day/month or month/day? check'
                )
        found = _guess_instruments(
            [c for c in cols] if not wide else [re.sub(r"_s\d+$", "", c) for c in cols]
        )
        items = []
        for ident, pattern, why in found:
            role = "alliance" if ident in ALLIANCE_IDS else "outcome"
            instruments.setdefault(role, (ident, why))
            canonical = None
            from alliance_lib.registry import get_instrument

            inst = get_instrument(ident)
            canonical = f"{inst.prefix}_{{n}}"
            if pattern != canonical:
                items.append((ident, pattern, why))
        for ident, pattern, why in items:
            lines.append(f"        items: {{{ident}: {_quote(pattern)}}}  # REVIEW: {why}")
        sources.append("\n".join(lines))
    out = [
        "# Draft study YAML written by `alliance init` from the files' headers.",
        "# Every line marked REVIEW is a guess: check it against the files, then delete the mark.",
        f"study: {_quote(name or 'Draft study')}",
        "waves:",
        "  1:",
        "    sources:",
        *sources,
        "missing_codes: []  # REVIEW: codes that mean 'missing' (e.g. -99, 999, NASK)",
        "instruments:",
    ]
    if not instruments:
        out.append("  alliance: wai-sr  # REVIEW: no instrument recognised in the headers")
    for role in ("alliance", "outcome"):
        if role in instruments:
            ident, why = instruments[role]
            out.append(f"  {role}: {ident}  # REVIEW: {why}")
    return "\n".join(out) + "\n"


def write_draft(paths, out: str | Path, *, name: str | None = None, force: bool = False) -> Path:
    """Write :func:`draft_study` to `out` (refuses to replace a file unless `force`).

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> here = Path(__file__).parents[1] / "tests" / "data" / "intake" / "multi_file"
    >>> out = Path(tempfile.mkdtemp()) / "study.yaml"
    >>> write_draft(sorted(here.glob("*.csv")), out, name="Trial").name
    'study.yaml'
    """
    out = Path(out)
    if out.exists() and not force:
        from alliance_lib.errors import DefinitionError

        raise DefinitionError(
            f"{out.name} exists already; give another name or --force to replace it",
            file=out.name,
        )
    out.write_text(draft_study(paths, name=name, base=out.resolve().parent), encoding="utf-8")
    return out
