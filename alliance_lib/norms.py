"""Norms: severity bands, clinical cutoffs and reliable-change points from instrument definitions.

The numbers live in the instrument YAML files (``norms:``), each with its source and status;
this module applies them to scored tables and lays them out for reports.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from alliance_lib.errors import DefinitionError
from alliance_lib.frame import model_frame
from alliance_lib.registry import Instrument, _available, get_instrument

__all__ = ["NormsError", "norms_table", "severity"]

_CMP = {">=": np.greater_equal, ">": np.greater, "<=": np.less_equal, "<": np.less}
# Scores are compared after rounding to 9 decimals, so that 10 x mean scores that are whole
# numbers in exact arithmetic never fall below a band edge by a rounding error.
_DECIMALS = 9


#: The instrument has no norms of the kind requested: a :class:`DefinitionError` (name kept).
NormsError = DefinitionError


def severity(
    df: pd.DataFrame,
    instrument: str | Instrument,
    *,
    score: str | None = None,
) -> pd.DataFrame:
    """Add the severity band (and the cutoff classification) of a scored column.

    Parameters
    ----------
    df : DataFrame
        A scored table (see :func:`alliance_lib.score`).
    instrument : str or Instrument
        Instrument id or definition.
    score : str, optional
        The score column (default ``{prefix}_total``, or the scale the bands are defined on).
        It must be on the scale of the norms, i.e. scored with the default metric.

    Returns
    -------
    DataFrame
        A copy of ``df`` with ``{prefix}_severity`` (ordered categorical, NaN where the score is
        NaN) and, when the instrument has a cutoff, ``{prefix}_clinical`` (nullable boolean:
        True when the score is in the clinical range). ``attrs["norms"][prefix]`` records the
        bands, the cutoff, whether the bands were derived from the cutoff, and the facts used
        that are marked uncertain (e.g. the CORE-OM band edges), for report footnotes.

    Raises
    ------
    NormsError
        If the instrument has neither severity bands nor a cutoff (e.g. the WAI family).

    Notes
    -----
    Bands are defined by their lower bounds :math:`l_1 < l_2 < \\dots`: a score :math:`s` falls
    in band :math:`k` when :math:`l_k \\le s < l_{k+1}`. A prorated score between two printed
    bands (CORE-10: 5.56 between "0-5" and "6-10") therefore falls in the lower band. Without
    published bands but with a cutoff (OQ-45.2, SRS, ORS) the two bands are ``non-clinical`` and
    ``clinical``, split by the cutoff's rule (e.g. OQ-45.2 ``>= 64``; SRS ``< 36`` means a
    possible alliance problem).

    References
    ----------
    Kroenke et al. (2001) PHQ-9 bands; Spitzer et al. (2006) GAD-7 bands; Barkham et al. (2013)
    CORE-10 bands; sources and statuses per instrument in ``alliance_lib/instruments/*.yaml``.

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"phq9_total": [4, 5, 14, 15, 27, None]})
    >>> out = severity(df, "phq-9")
    >>> out["phq9_severity"].tolist()
    ['none-minimal', 'mild', 'moderate', 'moderately severe', 'severe', nan]
    >>> out["phq9_clinical"].tolist()
    [False, False, True, True, True, <NA>]
    """
    inst = get_instrument(instrument)
    norms = inst.norms
    bands, cutoff = norms.get("bands"), norms.get("cutoff")
    if not bands and not cutoff:
        raise NormsError(
            f"{inst.id} has no severity bands or cutoff in its definition ({inst.file}); "
            "none are published for it"
        )
    scale = norms.get("bands_scale", "total") if bands else cutoff["scale"]
    column = score or f"{inst.prefix}_{scale}"
    values = model_frame(
        df, {"score": column}, numeric=["score"], what=f"severity({inst.id}; run score() first)"
    ).values("score")
    values = np.round(values, _DECIMALS)
    uncertain = []
    if bands:
        labels = [b["label"] for b in bands]
        lowers = np.array([b["lower"] for b in bands], dtype=float)
        code = np.searchsorted(lowers, values, side="right") - 1
        code[np.isnan(values)] = -1  # below the first band or missing -> NaN
        if inst.facts["bands"].status == "uncertain":
            uncertain.append("bands")
        derived = False
    else:
        labels = ["non-clinical", "clinical"]
        rule = _CMP[cutoff["clinical_if"]]
        with np.errstate(invalid="ignore"):
            code = rule(values, cutoff["value"]).astype(np.int64)
        code[np.isnan(values)] = -1
        derived = True
    out = df.copy(deep=False)
    out[f"{inst.prefix}_severity"] = pd.Categorical.from_codes(
        code, categories=labels, ordered=True
    )
    if cutoff:
        if inst.facts["cutoff"].status == "uncertain":
            uncertain.append("cutoff")
        with np.errstate(invalid="ignore"):
            flag = _CMP[cutoff["clinical_if"]](values, cutoff["value"])
        out[f"{inst.prefix}_clinical"] = pd.array(
            np.where(np.isnan(values), None, flag), dtype="boolean"
        )
    out.attrs = dict(df.attrs)
    out.attrs["norms"] = {
        **df.attrs.get("norms", {}),
        inst.prefix: {
            "instrument": inst.id,
            "score": column,
            "bands": [dict(b) for b in bands] if bands else None,
            "bands_derived_from_cutoff": derived,
            "cutoff": None if not cutoff else dict(cutoff),
            "uncertain": uncertain,
        },
    }
    return out


def norms_table(folder: str | Path | None = None) -> pd.DataFrame:
    """Cutoffs, reliable-change points and bands of every instrument, with their status.

    Parameters
    ----------
    folder : str or Path, optional
        A folder of user definitions to include.

    Returns
    -------
    DataFrame
        One row per instrument: id, direction, cutoff (rule and value), cutoff_status,
        reliable_change (points), rc_confidence, rc_status, bands (text), bands_status.

    Examples
    --------
    >>> tab = norms_table().set_index("id")
    >>> tab.loc["core-10", ["cutoff", "reliable_change", "rc_confidence"]].tolist()
    ['>= 11', 6.0, 0.9]
    """
    rows = []
    for inst in _available(folder).values():
        cut, rc, bands = (inst.norms.get(k) for k in ("cutoff", "reliable_change", "bands"))

        def status(name, inst=inst):
            return inst.facts[name].status if name in inst.facts else None

        rows.append(
            {
                "id": inst.id,
                "direction": inst.direction,
                "cutoff": None if not cut else f"{cut['clinical_if']} {cut['value']:g}",
                "cutoff_status": status("cutoff") if cut else None,
                "reliable_change": None if not rc else rc["points"],
                "rc_confidence": None if not rc else rc["confidence"],
                "rc_status": status("reliable_change") if rc else None,
                "bands": None
                if not bands
                else ", ".join(f"{b['label']} >= {b['lower']:g}" for b in bands),
                "bands_status": status("bands") if bands else None,
            }
        )
    return pd.DataFrame(rows).sort_values("id", ignore_index=True).astype(object)
