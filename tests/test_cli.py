"""The `alliance` command mirrors the API; errors exit 2 with a one-line message."""

from pathlib import Path

import pandas as pd

from alliance_lib.cli import main

DEMO = Path(__file__).resolve().parents[1] / "data" / "demo"


def test_instruments_lists_the_registry(capsys):
    assert main(["instruments"]) == 0
    out = capsys.readouterr().out
    for ident in ("wai-sr", "oq-45.2", "phq-9", "core-om"):
        assert ident in out


def test_simulate_writes_csv(tmp_path, capsys):
    out = tmp_path / "sim.csv"
    assert (
        main(
            ["simulate", "-o", str(out), "--n-clients", "12", "--n-therapists", "3", "--seed", "4"]
        )
        == 0
    )
    d = pd.read_csv(out)
    assert d["client_id"].nunique() == 12
    assert f"{len(d)} rows" in capsys.readouterr().out


def test_validate_reports_counts(capsys):
    code = main(
        [
            "validate",
            str(DEMO / "wave1.csv"),
            "-i",
            "wai-sr",
            "-i",
            "oq-45.2",
            "--missing-codes",
            "-99",
            "999",
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    n = len(pd.read_csv(DEMO / "wave1.csv"))
    assert f"{n} rows read" in out
    clean, quarantined = (
        int(x) for x in out.split("rows read, ")[1].split(" quarantined")[0].split(" clean, ")
    )
    assert clean + quarantined == n and quarantined >= 2


def test_score_writes_scores(tmp_path):
    src = tmp_path / "in.csv"
    pd.DataFrame(
        {"client_id": ["A"], "session": [1], **{f"wai_sr_{k}": [4] for k in range(1, 13)}}
    ).to_csv(src, index=False)
    out = tmp_path / "scored.csv"
    assert main(["score", str(src), "-i", "wai-sr", "-o", str(out)]) == 0
    assert pd.read_csv(out)["wai_sr_total"].iloc[0] == 4.0


def test_errors_exit_2_with_message(tmp_path, capsys):
    assert main(["report", str(tmp_path / "nope.yaml"), "--wave", "1"]) == 2
    err = capsys.readouterr().err
    assert "nope.yaml" in err and "file not found" in err
    assert main(["report", str(DEMO / "study.yaml"), "--wave", "9"]) == 2
    assert "wave 9 is not defined" in capsys.readouterr().err


def test_unknown_instrument_is_one_line_exit_2(capsys):
    assert main(["score", str(DEMO / "wave1.csv"), "-i", "wai-xx"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert "wai-xx" in err and "Traceback" not in err


def test_messages_use_flags_not_python_keywords(tmp_path, capsys):
    src = tmp_path / "bad.csv"
    items = {f"wai_sr_{k}": [4, 4] for k in range(1, 13)}
    items["wai_sr_3"] = [-9, 4]
    pd.DataFrame({"client_id": ["A", "B"], "session": [1, 1], **items}).to_csv(src, index=False)
    assert main(["score", str(src), "-i", "wai-sr"]) == 2
    err = capsys.readouterr().err
    assert "--missing-codes" in err and "missing_codes=" not in err
    assert "--errors quarantine" in err and "errors='quarantine'" not in err
    assert len(err.strip().splitlines()) == 1
    assert "row" in err and "-9" in err


def test_closed_pipe_ends_quietly(tmp_path):
    import subprocess
    import sys

    src = tmp_path / "many.csv"
    n = 20000
    pd.DataFrame(
        {"client_id": [f"C{i}" for i in range(n)], "session": 1,
         **{f"wai_sr_{k}": 4 for k in range(1, 13)}}
    ).to_csv(src, index=False)  # fmt: skip
    cmd = f"{sys.executable} -m alliance_lib.cli score {src} -i wai-sr | head -n 2"
    out = subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=120)
    assert len(out.stdout.splitlines()) == 2
    assert "BrokenPipe" not in out.stderr and "Traceback" not in out.stderr, out.stderr


def test_key_command_says_where_the_key_comes_from(capsys):
    assert main(["key", str(DEMO / "study.yaml")]) == 0
    assert "privacy.salt in study.yaml" in capsys.readouterr().out
