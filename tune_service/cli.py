"""The ``tune-service`` command.

Exit codes: 0 done; 1 the sweep failed; 2 bad input (the spec, its data or
model, or the command line), refused before Ray starts; 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import sys

from .spec import SpecError, SweepSpec, load_spec

EXIT_FAILED, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 1, 2, 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tune-service", description="Hyperparameter sweeps for fine-tuning pretrained models, on Ray Tune."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run a sweep here (Ray in-process) or on a cluster (--address)")
    run.add_argument("spec", help="the sweep spec (YAML)")
    run.add_argument(
        "--smoke-test", action="store_true", help="2 trials, 1 epoch, small subsets: check a sweep quickly"
    )
    run.add_argument("--tracking-uri", help="MLflow tracking URI (overrides $MLFLOW_TRACKING_URI and the spec)")
    run.add_argument("--address", help="a running Ray cluster to use instead of starting Ray in-process")
    run.add_argument(
        "--storage-path", help="where Ray Tune keeps trial results and checkpoints (default ~/ray_results)"
    )
    run.add_argument("--num-cpus", type=int, help="CPUs of the in-process Ray (default: all)")
    run.add_argument("--json", metavar="PATH", help="also write the result as JSON to PATH ('-' for stdout)")

    val = sub.add_parser("validate", help="check a spec, its data and its model; run nothing")
    val.add_argument("spec")
    val.add_argument("--spec-only", action="store_true", help="check the spec alone (no data or model loading)")

    sub.add_parser("schema", help="print the spec's JSON Schema")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "schema":
            print(json.dumps(SweepSpec.model_json_schema(), indent=2))
            return 0
        if args.command == "validate":
            spec = load_spec(args.spec)
            if not args.spec_only:
                from . import preflight

                preflight.check(spec)
            search = spec.search
            goal = ", ".join(f"{o} {m}" for m, o in search.all_objectives)
            print(f"{args.spec}: valid sweep spec '{spec.name}' ({search.strategy}+{search.scheduler}; {goal})")
            return 0
        from .driver import run_sweep

        result = run_sweep(
            args.spec,
            smoke_test=args.smoke_test,
            tracking_uri=args.tracking_uri,
            address=args.address,
            storage_path=args.storage_path,
            num_cpus=args.num_cpus,
        )
        if args.json == "-":
            print(result.to_json(indent=2))
        elif args.json:
            with open(args.json, "w", encoding="utf-8") as fh:
                fh.write(result.to_json(indent=2))
        return 0 if result.best_trial_id is not None else EXIT_FAILED
    except SpecError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
