"""The ``alliance`` command: a thin wrapper over the Python API (flags mirror keyword arguments).

alliance report STUDY.yaml --wave N [--out DIR]     run the study report for one wave
alliance report STUDY.yaml --all-waves              ... for every wave
alliance score FILE --instrument ID [-o OUT]        score a data file
alliance validate FILE --instrument ID [-o OUT]     list rows that cannot be scored, and why
alliance instruments [--folder DIR]                 list the known instruments
alliance simulate -o OUT.csv [--n-clients N]        simulate a study (or --demo-study DIR)
alliance key STUDY.yaml [--create]                  where the pseudonym key comes from
alliance init DATA... [-o study.yaml]               draft a study YAML from the files' headers
alliance explore STUDY.yaml [--wave N] [--port P]   browse clients and measures (Voila, localhost)
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import warnings
from pathlib import Path

__all__ = ["main"]

# Python keyword spellings in library messages -> the flags of this command line
_VOCABULARY = (
    (r"\bmissing_codes=", "--missing-codes"),
    (r"\berrors='quarantine'", "--errors quarantine"),
    (r"\berrors=\"quarantine\"", "--errors quarantine"),
    (r"\bmetric=", "--metric"),
    (r"\bout_dir=", "--out"),
    (r"\bnan_policy=", "--nan-policy"),
    (r"\(or validate\(\)\)", "(or `alliance validate`)"),
    (r"\bvalidate\(\)", "`alliance validate`"),
)


def _in_cli_words(message: str) -> str:
    """A library message in the vocabulary of the command line (``--missing-codes``, not
    ``missing_codes=``), on one line: the first detail line kept, the rest counted.

    Examples
    --------
    >>> _in_cli_words("w.csv: 2 bad cells; declare missing codes with missing_codes=:\\n  row 3\\n  row 4")
    'w.csv: 2 bad cells; declare missing codes with --missing-codes: row 3 (and 1 more line)'
    """
    for pattern, repl in _VOCABULARY:
        message = re.sub(pattern, repl, message)
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    if len(lines) <= 1:
        return lines[0] if lines else message
    head = lines[0] + " " + lines[1]
    rest = len(lines) - 2
    if rest:
        head += f" (and {rest} more line{'s' if rest > 1 else ''})"
    return head


def _codes(values: list[str] | None) -> tuple[float, ...]:
    out = []
    for v in values or []:
        try:
            out.append(int(v))
        except ValueError:
            out.append(float(v))
    return tuple(out)


def _cmd_report(args: argparse.Namespace) -> int:
    from alliance_lib.report import run_report

    result = run_report(
        args.study_yaml,
        args.wave,
        args.out,
        all_waves=args.all_waves,
        quiet=args.quiet,
        out_flag="--out",
    )
    for path in result if isinstance(result, list) else [result]:
        print(path)
    return 0


def _cmd_score(args: argparse.Namespace) -> int:
    from alliance_lib.io import read_table
    from alliance_lib.scoring import score

    df = read_table(args.file)
    for inst in args.instrument:
        df = score(
            df,
            inst,
            metric=args.metric,
            missing_codes=_codes(args.missing_codes),
            errors=args.errors,
        )
    if args.output:
        df.to_csv(args.output, index=False)
        print(f"{len(df)} rows scored -> {args.output}")
    else:
        df.to_csv(sys.stdout, index=False)
    return 0


def _cmd_validate(args: argparse.Namespace) -> int:
    from alliance_lib.io import read_table
    from alliance_lib.validate import validate

    df = read_table(args.file)
    result = validate(
        df, list(args.instrument), missing_codes=_codes(args.missing_codes), source=str(args.file)
    )
    print(
        f"{args.file}: {result.n_in} rows read, {result.n_clean} clean, "
        f"{result.n_quarantined} quarantined"
    )
    if len(result.summary):
        print(result.summary.to_string(index=False))
    if args.output:
        result.quarantined.to_csv(args.output)
        print(f"quarantined rows -> {args.output}")
    return 0 if result.n_quarantined == 0 or not args.strict else 3


def _cmd_instruments(args: argparse.Namespace) -> int:
    from alliance_lib.registry import list_instruments

    table = list_instruments(folder=args.folder)
    print(table.to_string(index=False))
    return 0


def _cmd_key(args: argparse.Namespace) -> int:
    from alliance_lib.privacy import resolve_key
    from alliance_lib.study import load_study

    study = load_study(args.study_yaml, check_files=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # printed below, once
        key = resolve_key(study, create=args.create)
    verb = "created" if key.created else "uses"
    print(f"{study.name}: pseudonym key {verb} {key.source}")
    for note in key.warnings:
        print(f"warning: {note}", file=sys.stderr)
    return 0


def _cmd_simulate(args: argparse.Namespace) -> int:
    from alliance_lib.simulate import DEMO_SEED, simulate_study, write_demo_study

    if args.seed is None:
        args.seed = DEMO_SEED
    if args.demo_study:
        for path in write_demo_study(args.demo_study, seed=args.seed):
            print(path)
        return 0
    if not args.output:
        raise SystemExit("alliance simulate: give -o OUT.csv or --demo-study DIR")
    df = simulate_study(
        n_therapists=args.n_therapists,
        n_clients=args.n_clients,
        max_sessions=args.max_sessions,
        seed=args.seed,
        output=args.output_kind,
    )
    df.to_csv(args.output, index=False, lineterminator="\n")
    print(f"{len(df)} rows -> {args.output}")
    return 0


def _cmd_init(args: argparse.Namespace) -> int:
    from alliance_lib.init_study import draft_study, write_draft

    if args.output is None:
        sys.stdout.write(draft_study(args.data, name=args.name))
        return 0
    out = write_draft(args.data, args.output, name=args.name, force=args.force)
    print(f"draft study -> {out}; check every line marked REVIEW")
    return 0


def _cmd_explore(args: argparse.Namespace) -> int:
    from alliance_lib.explore import serve

    return serve(args.study_yaml, args.wave, port=args.port, open_browser=not args.no_browser)


def build_parser() -> argparse.ArgumentParser:
    from alliance_lib._version import __version__

    parser = argparse.ArgumentParser(prog="alliance", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"alliance_lib {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("report", help="run the study report for a wave")
    p.add_argument("study_yaml", type=Path)
    group = p.add_mutually_exclusive_group()
    group.add_argument("--wave", type=int, default=None, help="wave number (default: latest)")
    group.add_argument("--all-waves", action="store_true", help="report every wave")
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="root of the reports (default ./reports): writes OUT/<study>/wave-<N>/",
    )
    p.add_argument("--quiet", action="store_true", help="no log lines")
    p.set_defaults(func=_cmd_report)

    for name, func, helptext in (
        ("score", _cmd_score, "score a data file"),
        ("validate", _cmd_validate, "validate a data file"),
    ):
        p = sub.add_parser(name, help=helptext)
        p.add_argument("file", type=Path)
        p.add_argument(
            "--instrument",
            "-i",
            action="append",
            required=True,
            help="instrument id (repeat for several)",
        )
        p.add_argument("--missing-codes", nargs="*", default=None, help="e.g. -99 999")
        p.add_argument("--output", "-o", type=Path, default=None)
        if name == "score":
            p.add_argument("--metric", choices=["mean", "sum", "mean_x10"], default=None)
            p.add_argument("--errors", choices=["raise", "quarantine"], default="raise")
        else:
            p.add_argument(
                "--strict",
                action="store_true",
                help="exit with status 3 when any row is quarantined",
            )
        p.set_defaults(func=func)

    p = sub.add_parser("instruments", help="list the known instruments")
    p.add_argument("--folder", type=Path, default=None, help="also load definitions from here")
    p.set_defaults(func=_cmd_instruments)

    p = sub.add_parser("simulate", help="simulate a study with known true values")
    p.add_argument("--output", "-o", type=Path, default=None)
    p.add_argument("--demo-study", type=Path, default=None, help="write the demo study here")
    p.add_argument("--n-clients", type=int, default=300)
    p.add_argument("--n-therapists", type=int, default=20)
    p.add_argument("--max-sessions", type=int, default=16)
    p.add_argument("--seed", type=int, default=None, help="default: the demo study's seed")
    p.add_argument("--output-kind", choices=["items", "scores"], default="items")
    p.set_defaults(func=_cmd_simulate)

    p = sub.add_parser("key", help="show where the pseudonym key comes from (or create one)")
    p.add_argument("study_yaml", type=Path)
    p.add_argument(
        "--create",
        action="store_true",
        help="create a random key file in the configuration folder when none is configured",
    )
    p.set_defaults(func=_cmd_key)
    p = sub.add_parser("init", help="draft a study YAML from the data files' headers")
    p.add_argument("data", type=Path, nargs="+", help="the data files of a wave")
    p.add_argument("--output", "-o", type=Path, default=None, help="YAML to write (default: print)")
    p.add_argument("--name", default=None, help="the study's name")
    p.add_argument("--force", action="store_true", help="replace an existing output file")
    p.set_defaults(func=_cmd_init)
    p = sub.add_parser("explore", help="browse a study's clients and measures in a local Voila app")
    p.add_argument("study_yaml", type=Path)
    p.add_argument("--wave", type=int, default=None, help="wave number (default: latest)")
    p.add_argument("--port", type=int, default=None, help="port on 127.0.0.1 (default: a free one)")
    p.add_argument("--no-browser", action="store_true", help="print the address, open no browser")
    p.set_defaults(func=_cmd_explore)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``alliance`` command; returns the exit status.

    Library errors (:class:`alliance_lib.errors.AllianceError`) print one line in the command
    line's vocabulary and exit with status 2 (a failed report notebook: status 1); a closed
    output pipe (``alliance score ... | head``) ends quietly.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    from alliance_lib.errors import AllianceError, ReportError

    try:
        return args.func(args)
    except BrokenPipeError:
        # the reader went away (e.g. `| head`): stop quietly; point stdout at devnull so the
        # interpreter's final flush does not raise again
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        return 0
    except ReportError as exc:
        status = 2 if getattr(exc, "failed_notebook", None) is None and exc.hint else 1
        print(f"alliance {args.command}: error: {_in_cli_words(str(exc))}", file=sys.stderr)
        return status
    except AllianceError as exc:
        print(f"alliance {args.command}: error: {_in_cli_words(str(exc))}", file=sys.stderr)
        return 2
    except FileNotFoundError as exc:
        print(f"alliance {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"alliance {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
