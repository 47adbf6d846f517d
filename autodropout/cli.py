"""The ``autodropout`` command line: search, train, export, transfer, show, list, study.

Every subcommand has ``--help`` with examples. Errors in the user's input (files, keys, values,
addresses) print one line ``autodropout: error: ...`` and exit with status 2; nothing half-written
is left behind.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable, Sequence

from autodropout.errors import ConfigError, UserInputError
from autodropout.experiment import DEFAULT_EXPERIMENT

EPILOGS = {
    "search": """examples:
  autodropout search                                  # embedded quick preset (digits, WideResNet)
  autodropout search lm_transformer_quick --trials 8  # the embedded language-model preset
  autodropout search my_experiment.yaml --concurrency 4 --address auto   # on a running Ray cluster
  autodropout search --resume runs/digits_wrn_quick-20261123-101500      # after an interruption""",
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
Ray Tune's random search at the same budget; each arm's best retrained on --eval-seeds new training
seeds and scored on the held-out test split (mean, SE, 95% intervals, paired differences against
'none' and the best tuned baseline); the same on each --transfer-to target. Writes report.md, plots
and the best patterns into the study folder. See docs/study.md.

examples:
  autodropout study digits_wrn_quick --budget 16 --search-seeds 2 --eval-seeds 5
  autodropout study lm_transformer_quick --transfer-to translation_numbers_quick
  autodropout study digits_wrn_quick --baselines none,dropout,dropblock --output studies/digits
  autodropout study --resume studies/digits          # after an interruption (even kill -9)
  autodropout study --report studies/digits          # rebuild report.md and plots from the folder
  autodropout study --publish studies/digits digits-wrn-lstm   # ship its best pattern by name""",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="autodropout",
        description="Learn dropout patterns (AutoDropout, Pham & Le 2021) and compare them with "
                    "hand-designed dropout methods.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, help_text: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help_text, description=help_text, epilog=EPILOGS[name],
                              formatter_class=argparse.RawDescriptionHelpFormatter)

    p = add("search", "Search dropout patterns with the RL controller on Ray Tune.")
    p.add_argument("experiment", nargs="?", default=None,
                   help=f"experiment YAML file or preset name (default: {DEFAULT_EXPERIMENT})")
    p.add_argument("--trials", type=int, help="number of trials (overrides search.trials)")
    p.add_argument("--concurrency", type=int, help="trials running at once (overrides search.concurrency)")
    p.add_argument("--controller", choices=["lstm", "random"], help="learned controller or random search")
    p.add_argument("--address", help="join a running Ray cluster: 'auto' or HOST:PORT (default: local)")
    p.add_argument("--output", type=Path, help="run folder (default: runs/NAME-TIMESTAMP)")
    p.add_argument("--seed", type=int, help="controller and training seed (default: task.train.seed)")
    p.add_argument("--epochs", type=int, help="epochs per trial (overrides task.train.epochs)")
    p.add_argument("--resume", type=Path, metavar="RUN_DIR", help="continue an interrupted search")

    p = add("train", "Train one model with a regularizer or a learned pattern; print and write metrics.")
    p.add_argument("experiment", help="experiment YAML file or preset name")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--regularizer", help="registry name placed at every site (see docs/regularizers.md)")
    group.add_argument("--pattern", type=Path, help="pattern JSON file (from search or export)")
    p.add_argument("--rank", type=int, default=1, help="which pattern of the file (default: 1, the best)")
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                   help="regularizer parameter, repeatable (values parsed as JSON, else strings)")
    p.add_argument("--epochs", type=int, help="overrides task.train.epochs")
    p.add_argument("--seed", type=int, help="overrides task.train.seed")
    p.add_argument("--output", type=Path, help="write the metrics as JSON here")

    p = add("export", "Export the best patterns and the trials table of a (finished or interrupted) run.")
    p.add_argument("run_dir", type=Path)
    p.add_argument("--top", type=int, default=5, help="number of patterns to export (default: 5)")
    p.add_argument("-o", "--output", type=Path, help="pattern file (default: RUN_DIR/best_patterns.json)")

    p = add("transfer", "Train a target task with a transferred pattern and with baselines; compare.")
    p.add_argument("patterns", type=Path, help="pattern JSON file, or the name of a shipped pattern")
    p.add_argument("--to", required=True, dest="target", help="target experiment YAML or preset name")
    p.add_argument("--rank", type=int, default=1, help="which pattern of the file (default: 1)")
    p.add_argument("--baselines", default="none,dropout",
                   help="comma-separated: none and/or registry names with their defaults, or "
                        "NAME:KEY=VALUE;KEY=VALUE to set parameters (default: none,dropout)")
    p.add_argument("--seeds", type=int, default=2, help="seeds per method (default: 2)")
    p.add_argument("--epochs", type=int, help="overrides the target's task.train.epochs")
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
    p.add_argument("--search-seeds", type=int, help="independent searches per search arm (default: 2)")
    p.add_argument("--eval-seeds", type=int, help="training seeds of the final evaluation, >= 2 (default: 5)")
    p.add_argument("--baselines", help="comma-separated: none and regularizer names (default: every one that "
                                       "applies to the task; see docs/study.md)")
    p.add_argument("--transfer-to", action="append", default=[], metavar="EXPERIMENT",
                   help="also score the learned patterns on this experiment (repeatable)")
    p.add_argument("--concurrency", type=int, help="trials at once (default: search.concurrency)")
    p.add_argument("--address", help="join a running Ray cluster: 'auto' or HOST:PORT (default: local)")
    p.add_argument("--output", type=Path, help="study folder (default: studies/NAME-TIMESTAMP)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--resume", type=Path, metavar="STUDY_DIR", help="continue an interrupted study")
    mode.add_argument("--report", type=Path, metavar="STUDY_DIR", help="rebuild report.md and plots from the folder")
    mode.add_argument("--publish", nargs=2, metavar=("STUDY_DIR", "NAME"),
                      help="ship the study's best LSTM pattern with the package under NAME")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = {"search": _search, "train": _train, "export": _export, "transfer": _transfer, "show": _show,
               "list": _list, "study": _study}
    try:
        return handler[args.command](args) or 0
    except KeyboardInterrupt:
        print("autodropout: interrupted", file=sys.stderr)
        return 130
    except UserInputError as exc:
        print(f"autodropout: error: {exc}", file=sys.stderr)
        return 2


def _experiment(name: str | None, epochs: int | None = None, seed: int | None = None):
    from autodropout.experiment import find_experiment

    return find_experiment(name or DEFAULT_EXPERIMENT).with_train(epochs=epochs, seed=seed)


def _search(args: argparse.Namespace) -> int:
    from autodropout.workers.run import resume_search, run_search

    if args.resume is not None:
        if args.experiment or args.trials or args.concurrency or args.controller or args.output or args.epochs:
            raise ConfigError("--resume continues a run as configured; give no experiment or overrides")
        resume_search(args.resume, address=args.address)
        return 0
    experiment = _experiment(args.experiment, args.epochs).with_search(
        trials=args.trials, concurrency=args.concurrency, controller=args.controller)
    run_search(experiment, output=args.output, address=args.address, seed=args.seed)
    return 0


def _train(args: argparse.Namespace) -> int:
    from autodropout.config import parse_assignments
    from autodropout.training import train_once

    if args.param and not args.regularizer:
        raise ConfigError("--param needs --regularizer")
    experiment = _experiment(args.experiment, args.epochs, args.seed)
    report = train_once(experiment, regularizer=args.regularizer, params=parse_assignments(args.param, "--param"),
                        pattern_file=args.pattern, rank=args.rank, output=args.output)
    print(report.text())
    return 0


def _export(args: argparse.Namespace) -> int:
    from autodropout.runs import export_run

    exported = export_run(args.run_dir, top=args.top, output=args.output)
    print(f"trials table: {exported.table_file} ({len(exported.records)} trials)")
    if exported.patterns_file is None:
        print("no completed trial yet: no patterns exported")
        return 1
    print(f"patterns:     {exported.patterns_file}")
    return 0


def _transfer(args: argparse.Namespace) -> int:
    from autodropout.transfer import run_transfer

    baselines = [b.strip() for b in args.baselines.split(",") if b.strip()]
    report = run_transfer(args.patterns, args.target, rank=args.rank, baselines=baselines, seeds=args.seeds,
                          epochs=args.epochs, output=args.output, parallel=False if args.sequential else None)
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
    from autodropout.catalog import listing

    print(listing(args.what))
    return 0


def _study(args: argparse.Namespace) -> int:
    from autodropout import study

    new = [args.experiment, args.budget, args.search_seeds, args.eval_seeds, args.baselines, args.concurrency,
           args.output] + args.transfer_to
    if args.resume or args.report or args.publish:
        option = "--resume" if args.resume else "--report" if args.report else "--publish"
        if any(v is not None for v in new) or (args.address and not args.resume):
            raise ConfigError(f"{option} works on an existing study folder as planned; give no experiment or options")
        if args.report:
            written = study.rebuild_report(args.report)
            print(f"rebuilt {args.report}: {', '.join(p.name for p in written)}")
        elif args.publish:
            print(f"published {study.publish(*args.publish)}")
        else:
            study.resume_study(args.resume, address=args.address)
        return 0
    baselines = None if args.baselines is None else [b.strip() for b in args.baselines.split(",") if b.strip()]
    study.run_study(args.experiment or DEFAULT_EXPERIMENT, budget=args.budget,
                    search_seeds=2 if args.search_seeds is None else args.search_seeds,
                    eval_seeds=5 if args.eval_seeds is None else args.eval_seeds, baselines=baselines,
                    transfer_to=args.transfer_to, output=args.output, address=args.address,
                    concurrency=args.concurrency)
    return 0


if __name__ == "__main__":
    sys.exit(main())
