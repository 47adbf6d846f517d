"""The ``autodropout`` command line: search, train, export, transfer, show, list, study.

Every subcommand has ``--help`` with examples. Errors in the user's input (files, keys, values,
addresses) print one line ``autodropout: error: ...`` and exit with status 2; nothing half-written
is left behind.
"""
from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NoReturn

from autodropout.controller import searchers
from autodropout.core.errors import ConfigError, UserInputError
from autodropout.runs.experiment import DEFAULT_EXPERIMENT

EPILOGS = {
    "search": """examples:
  autodropout search                                  # the embedded default, lm_transformer_quick
  autodropout search digits_wrn_quick --trials 8      # the embedded ConvNet preset (digits, WideResNet)
  autodropout search my_experiment.yaml --concurrency 4 --address auto   # on a running Ray cluster
  autodropout search --resume runs/digits_wrn_quick-20261123-101500      # after an interruption (Ctrl-C)
  autodropout search --resume runs/digits_wrn_quick-20261123-101500 --trials 48   # extend to 48 trials
  autodropout search digits_wrn_quick --start-from dropout:p=0.135   # start at (and refine) a tuned baseline
  autodropout search lm_transformer_quick --start-from lm-transformer-lstm   # or at a learned pattern

Ctrl-C (or SIGTERM) stops a search cleanly and exits with status 130; a second Ctrl-C stops at once.""",
    "train": """examples:
  autodropout train digits_wrn_quick                           # no dropout at the sites
  autodropout train digits_wrn_quick --regularizer dropblock --param p=0.1 --param block_size=3
  autodropout train lm_transformer_quick --regularizer dropout --param p=0.2 --seed 1
  autodropout train digits_wrn_quick --pattern runs/X/best_patterns.json --output result.json""",
    "export": """examples:
  autodropout export runs/digits_wrn_quick-20261123-101500 --top 3 -o patterns.json""",
    "transfer": """examples:
  autodropout transfer lm_patterns.json --to translation_numbers_quick --baselines none,dropout --seeds 2
  autodropout transfer runs/X/best_patterns.json --to cifar10_wrn28_10_final --rank 2""",
    "show": """Each site is drawn at its size in the searched model (recorded in the pattern file by
`autodropout export`), or at --size for every site; files without sizes use 16x16 (conv) or
T 16 x C 64 (Transformer). Each site is labelled with the drop rate measured on the masks drawn and
the rate its geometry gives at that size (d); kept values are scaled by 1 / (1 - d).

examples:
  autodropout show runs/X/best_patterns.json                 # terminal preview
  autodropout show runs/X/best_patterns.json -o masks.png    # PNG: legend, rates, Gaussian colour bars
  autodropout show runs/X/best_patterns.json --rank 2 --size 32 32""",
    "list": """examples:
  autodropout list                  # presets, regularizers and shipped patterns
  autodropout list presets          # name, task, model, sites (count and sizes), seconds per trial
  autodropout list regularizers     # name, parameters with their defaults, activation layouts
  autodropout list patterns         # learned patterns shipped with the package, with their test results""",
    "study": """Runs, on Ray: the LSTM controller and random search in the same space (--search-seeds
searches of --budget trials each); every applicable hand-designed regularizer with its rate tuned by
a lattice that converges (then a finer one around its best) at the same budget; each arm's best retrained on
--eval-seeds new training seeds and scored on the held-out test split (mean, SE, 95% intervals, paired
differences against 'none' and the best tuned baseline); the same on each --transfer-to target; each --transfer-from
pattern scored on this task beside its own arms. Writes report.md, plots and the best patterns into
the study folder. See docs/study.md.

examples:
  autodropout study digits_wrn_quick --budget 16 --search-seeds 2 --eval-seeds 5
  autodropout study lm_transformer_quick --transfer-to translation_numbers_quick
  autodropout study translation_numbers_quick --transfer-from lm-transformer-lstm
  autodropout study digits_wrn_quick --baselines none,dropout,dropblock --output studies/digits
  autodropout study --resume studies/digits          # after an interruption (even kill -9)
  autodropout study --report studies/digits          # rebuild report.md and plots from the folder
  autodropout study --publish studies/digits digits-wrn-lstm   # ship its best pattern by name""",
}


THREADS_HELP = "torch threads per training process (overrides task.train.threads; default: search.cpus_per_trial)"


class _Parser(argparse.ArgumentParser):
    """Usage errors in one line, ``autodropout COMMAND: error: ...``, exit status 2 (as argparse)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def count(minimum: int) -> Callable[[str], int]:
    """An argparse type: an integer >= ``minimum``, checked as given on the command line."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {value}")
        return value

    parse.__name__ = f"integer >= {minimum}"
    return parse


def start_from(text: str) -> str:
    """An argparse type: a start point spec (``autodropout.runs.experiment.parse_start_from``), checked as given."""
    from autodropout.runs.experiment import parse_start_from

    try:
        parse_start_from(text)
    except UserInputError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="autodropout",
        description="Learn dropout patterns (AutoDropout, Pham & Le 2021) and compare them with "
                    "hand-designed dropout methods.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, help_text: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help_text, description=help_text, epilog=EPILOGS[name],
                              formatter_class=argparse.RawDescriptionHelpFormatter)

    _search_arguments(add("search", "Search dropout patterns with the RL controller on Ray Tune."))
    _train_arguments(add("train", "Train one model with a regularizer or a learned pattern; print and write metrics."))

    p = add("export", "Export the best patterns and the trials table of a (finished or interrupted) run.")
    p.add_argument("run_dir", type=Path)
    p.add_argument("--top", type=count(1), default=5, help="number of patterns to export (default: 5)")
    p.add_argument("-o", "--output", type=Path, help="pattern file, a new file (default: RUN_DIR/best_patterns.json)")

    p = add("transfer", "Train a target task with a transferred pattern and with baselines; compare.")
    p.add_argument("patterns", type=Path, help="pattern JSON file, or the name of a shipped pattern")
    p.add_argument("--to", required=True, dest="target", help="target experiment YAML or preset name")
    p.add_argument("--rank", type=count(1), default=1, help="which pattern of the file (default: 1)")
    p.add_argument("--baselines", default="none,dropout",
                   help="comma-separated: none and/or registry names with their defaults, or "
                        "NAME:KEY=VALUE;KEY=VALUE to set parameters (default: none,dropout)")
    p.add_argument("--seeds", type=count(1), default=2, help="seeds per method (default: 2)")
    p.add_argument("--epochs", type=count(1), help="overrides the target's task.train.epochs")
    p.add_argument("--threads", type=count(1), help=THREADS_HELP)
    p.add_argument("--output", type=Path, help="report folder (default: transfers/TARGET-TIMESTAMP)")
    p.add_argument("--sequential", action="store_true", help="train one run at a time, without Ray")

    _add_show_and_list(add)
    _add_study(add)
    return parser


def _add_show_and_list(add: Callable[[str, str], argparse.ArgumentParser]) -> None:
    p = add("show", "Draw the masks of a pattern file (PNG with -o, terminal preview otherwise).")
    p.add_argument("patterns", type=Path, help="pattern JSON file, or the name of a shipped pattern")
    p.add_argument("--rank", type=int, default=1, help="which pattern of the file (default: 1, the best)")
    p.add_argument("--size", nargs=2, metavar=("H", "W"),
                   help="draw every site at H x W (T x C for Transformer patterns) instead of its size in the model")
    p.add_argument("-o", "--output", type=Path, help="PNG file to write (its folder must exist)")

    p = add("list", "List the presets (task, model, sites, time per trial) and the regularizers (parameters).")
    p.add_argument("what", nargs="?", metavar="presets|regularizers|patterns", help="only one of the tables")


def _add_study(add: Callable[[str, str], argparse.ArgumentParser]) -> None:
    p = add("study", "Learned patterns vs random search vs rate-tuned baselines, on test, with confidence intervals.")
    p.add_argument("experiment", nargs="?", default=None,
                   help=f"experiment YAML file or preset name (default: {DEFAULT_EXPERIMENT})")
    p.add_argument("--budget", type=int, help="trials per search and per tuned baseline (default: search.trials)")
    p.add_argument("--budgets", metavar="B1,B2,...",
                   help="a budget curve: comma-separated trial counts (e.g. 16,48,144); the largest is the budget, "
                        "and at each smaller one every search's and tuning's best of its first B trials is evaluated "
                        "too, so the report shows test metric against trials")
    p.add_argument("--search-seeds", type=int, help="independent searches per search arm (default: 2)")
    p.add_argument("--eval-seeds", type=int, help="training seeds of the final evaluation, >= 2 (default: 5)")
    p.add_argument("--baselines", help="comma-separated: none and regularizer names (default: every one that "
                                       "applies to the task; see docs/study.md)")
    p.add_argument("--transfer-to", action="append", default=[], metavar="EXPERIMENT",
                   help="also score the learned patterns on this experiment (repeatable)")
    p.add_argument("--transfer-budget", type=int, metavar="N",
                   help="trials per tuned baseline on each --transfer-to target (default: --budget)")
    p.add_argument("--transfer-from", action="append", default=[], metavar="PATTERN",
                   help="also score this pattern (a file or a shipped name, learned on another task) on this "
                        "task against its tuned baselines (repeatable)")
    p.add_argument("--arms", help=f"comma-separated search arms among the searchers "
                                  f"({', '.join(searchers.available())}) and their -warm arms (lstm-warm, ...: "
                                  "started from the best tuned mask baseline; default: lstm, random, lstm-warm, "
                                  "random-warm when a mask baseline is tuned, else lstm,random)")
    p.add_argument("--concurrency", type=int, help="trials at once (default: search.concurrency)")
    p.add_argument("--address", help="join a running Ray cluster: 'auto' or HOST:PORT (default: local)")
    p.add_argument("--output", type=Path, help="study folder (default: studies/NAME-TIMESTAMP)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--resume", type=Path, metavar="STUDY_DIR", help="continue an interrupted study")
    mode.add_argument("--report", type=Path, metavar="STUDY_DIR", help="rebuild report.md and plots from the folder")
    mode.add_argument("--publish", nargs=2, metavar=("STUDY_DIR", "NAME"),
                      help="ship the study's best LSTM pattern with the package under NAME")


def _search_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("experiment", nargs="?", default=None,
                   help=f"experiment YAML file or preset name (default: {DEFAULT_EXPERIMENT})")
    p.add_argument("--trials", type=count(1), help="number of trials (overrides search.trials); with --resume, "
                   "a larger number extends a search")
    p.add_argument("--concurrency", type=count(1), help="trials running at once (overrides search.concurrency)")
    names = searchers.available()  # every registered searcher (autodropout/controller/searchers/)
    p.add_argument("--controller", choices=names, metavar="{" + ",".join(names) + "}",
                   help="the searcher (overrides search.controller): lstm (the learned controller, default), "
                        "random search, evolution (regularized evolution), or any other registered one; its "
                        "settings: search.searchers.NAME in the experiment file (docs/search.md)")
    p.add_argument("--scheduler", choices=["none", "asha"],
                   help="trial scheduler (overrides search.scheduler): asha stops trials whose reward ranks low at "
                        "a rung (search.grace_period epochs, default 3/4 of the schedule)")
    p.add_argument("--address", help="join a running Ray cluster: 'auto' or HOST:PORT (default: local)")
    p.add_argument("--output", type=Path, help="run folder (default: runs/NAME-TIMESTAMP)")
    p.add_argument("--seed", type=count(0), help="controller and training seed (default: task.train.seed)")
    p.add_argument("--epochs", type=count(1), help="epochs per trial (overrides task.train.epochs)")
    p.add_argument("--threads", type=count(1), help=THREADS_HELP)
    p.add_argument("--start-from", type=start_from, metavar="SPEC",
                   help="start at SPEC and search around it (overrides search.start_from): a regularizer with its "
                        "parameters, NAME:KEY=VALUE,... (dropout:p=0.135), or a pattern file or shipped pattern name")
    p.add_argument("--resume", type=Path, metavar="RUN_DIR",
                   help="continue an interrupted search (or extend a finished one with --trials)")


def _train_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("experiment", help="experiment YAML file or preset name")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--regularizer", help="registry name placed at every site (see docs/regularizers.md)")
    group.add_argument("--pattern", type=Path, help="pattern JSON file (from search or export)")
    p.add_argument("--rank", type=count(1), default=1, help="which pattern of the file (default: 1, the best)")
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                   help="regularizer parameter, repeatable (values parsed as JSON, else strings)")
    p.add_argument("--epochs", type=count(1), help="overrides task.train.epochs")
    p.add_argument("--seed", type=count(0), help="overrides task.train.seed")
    p.add_argument("--threads", type=count(1), help=THREADS_HELP)
    p.add_argument("--output", type=Path, help="write the metrics as JSON here (a new file)")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, or a usage error already printed in one line
        return exc.code if isinstance(exc.code, int) else 0
    handler = {"search": _search, "train": _train, "export": _export, "transfer": _transfer, "show": _show,
               "list": _list, "study": _study}
    try:
        code = handler[args.command](args) or 0
        sys.stdout.flush()  # so that a reader gone early (`| head`) is seen here, not at interpreter exit
        return code
    except BrokenPipeError:
        # The idiom of Python's signal docs: point stdout at devnull so the exit flush cannot fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except KeyboardInterrupt:
        print("autodropout: interrupted", file=sys.stderr)
        return 130
    except UserInputError as exc:
        message = "; ".join(line.strip() for line in str(exc).splitlines() if line.strip())
        print(f"autodropout: error: {message}", file=sys.stderr)
        return 2


def _experiment(name: str | None, epochs: int | None = None, seed: int | None = None, threads: int | None = None):
    from autodropout.runs.experiment import find_experiment

    return find_experiment(name or DEFAULT_EXPERIMENT).with_train(epochs=epochs, seed=seed, threads=threads)


def _new_file(path: Path | None, flag: str) -> Path | None:
    """``path`` if a new file can be written there: nothing is ever overwritten, and the check
    comes before any work (a training run must not end in an unwritable output)."""
    if path is None:
        return None
    if path.exists():
        what = "a folder" if path.is_dir() else "a file"
        raise ConfigError(f"{flag} {path}: {what} of that name exists; give a new file name (nothing is overwritten)")
    if not path.parent.is_dir():
        raise ConfigError(f"{flag} {path}: the folder {path.parent} does not exist")
    return path


#: Options a resumed search cannot change (it continues as configured in its run folder).
_FIXED_ON_RESUME = (("experiment", "an experiment"), ("concurrency", "--concurrency"), ("controller", "--controller"),
                    ("output", "--output"), ("epochs", "--epochs"), ("seed", "--seed"), ("threads", "--threads"),
                    ("start_from", "--start-from"), ("scheduler", "--scheduler"))


def _search(args: argparse.Namespace) -> int:
    from autodropout.tune.search import resume_search, run_search

    if args.resume is not None:
        given = [flag for name, flag in _FIXED_ON_RESUME if getattr(args, name) is not None]
        if given:
            raise ConfigError("--resume continues a run as configured; give no experiment or overrides "
                              f"(got {given[0]}; only --trials, to extend the search, and --address go with --resume)")
        summary = resume_search(args.resume, trials=args.trials, address=args.address)
    else:
        experiment = _experiment(args.experiment, args.epochs, threads=args.threads).with_search(
            trials=args.trials, concurrency=args.concurrency, controller=args.controller, start_from=args.start_from,
            scheduler=args.scheduler)
        summary = run_search(experiment, output=args.output, address=args.address, seed=args.seed)
    return 130 if summary.interrupted else 0


def _train(args: argparse.Namespace) -> int:
    from autodropout.commands.train import train_once
    from autodropout.core.config import parse_assignments

    if args.param and not args.regularizer:
        raise ConfigError("--param needs --regularizer")
    if args.rank != 1 and args.pattern is None:
        raise ConfigError("--rank needs --pattern")
    output = _new_file(args.output, "--output")
    experiment = _experiment(args.experiment, args.epochs, args.seed, args.threads)
    report = train_once(experiment, regularizer=args.regularizer, params=parse_assignments(args.param, "--param"),
                        pattern_file=args.pattern, rank=args.rank, output=output)
    print(report.text())
    return 0


def _export(args: argparse.Namespace) -> int:
    from autodropout.runs import export_run

    exported = export_run(args.run_dir, top=args.top, output=_new_file(args.output, "--output"))
    print(f"trials table: {exported.table_file} ({len(exported.records)} trials)")
    if exported.patterns_file is None:
        print("no completed trial yet: no patterns exported")
        return 1
    print(f"patterns:     {exported.patterns_file}")
    return 0


def _transfer(args: argparse.Namespace) -> int:
    from autodropout.commands.transfer import run_transfer

    baselines = [b.strip() for b in args.baselines.split(",") if b.strip()]
    report = run_transfer(args.patterns, args.target, rank=args.rank, baselines=baselines, seeds=args.seeds,
                          epochs=args.epochs, threads=args.threads, output=args.output,
                          parallel=False if args.sequential else None)
    print(report.text())
    return 0


def _show(args: argparse.Namespace) -> int:
    from autodropout.viz import ViewError, show

    size = None
    if args.size:
        try:
            size = tuple(int(v) for v in args.size)
        except ValueError:
            raise ViewError(f"--size: expected two integers H W, got {' '.join(args.size)!r}") from None
    print(show(args.patterns, rank=args.rank, size=size, output=args.output))
    return 0


def _list(args: argparse.Namespace) -> int:
    from autodropout.commands.catalog import listing

    print(listing(args.what))
    return 0


def _study(args: argparse.Namespace) -> int:
    import dataclasses

    from autodropout import study

    # The options of a new study are StudyRequest's fields (argparse gives each its name and None/[]
    # when absent, so the request's own defaults apply).
    names = [field.name for field in dataclasses.fields(study.StudyRequest)]
    given = {name: getattr(args, name) for name in names if getattr(args, name) not in (None, [])}
    if args.resume or args.report or args.publish:
        option = "--resume" if args.resume else "--report" if args.report else "--publish"
        if given or args.output is not None or (args.address and not args.resume):
            raise ConfigError(f"{option} works on an existing study folder as planned; give no experiment or options")
        if args.report:
            written = study.rebuild_report(args.report)
            print(f"rebuilt {args.report}: {', '.join(p.name for p in written)}")
        elif args.publish:
            print(f"published {study.publish(*args.publish)}")
        else:
            study.resume_study(args.resume, address=args.address)
        return 0
    for name in ("baselines", "arms"):
        if name in given:
            given[name] = [b.strip() for b in given[name].split(",") if b.strip()]
    if "budgets" in given:
        given["budgets"] = _budget_list(given["budgets"])
    given.setdefault("experiment", DEFAULT_EXPERIMENT)
    study.run_study(output=args.output, address=args.address, **given)
    return 0


def _budget_list(text: str) -> list[int]:
    try:
        return [int(b) for b in text.split(",") if b.strip()]
    except ValueError:
        raise ConfigError(f"--budgets: expected comma-separated trial counts (e.g. 16,48,144), got {text!r}") from None


if __name__ == "__main__":
    sys.exit(main())
