"""The ``tune-service`` command.

Exit codes: 0 done; 1 the sweep failed (or ended without a result); 2 bad
input (the spec, its data or model, the command line, an unreachable cluster),
refused before anything runs; 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys

from .spec import SpecError, SweepSpec
from .validate import load_spec

EXIT_FAILED, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 1, 2, 130
JOB_COMMANDS = ("status", "logs", "stop", "wait", "best")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tune-service", description="Hyperparameter sweeps for fine-tuning pretrained models, on Ray Tune."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def sweep_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("spec", help="the sweep spec (YAML)")
        p.add_argument(
            "--smoke-test", action="store_true", help="2 trials, 1 epoch, small subsets: check a sweep quickly"
        )
        p.add_argument("--tracking-uri", help="MLflow tracking URI (overrides $MLFLOW_TRACKING_URI and the spec)")
        p.add_argument(
            "--storage-path",
            help="Tune's storage for trial results and checkpoints: a local folder (default ~/ray_results), "
            "a path all nodes share, or s3://, gs://",
        )

    run = sub.add_parser("run", help="run a sweep here (Ray in-process) or on a cluster (--address)")
    sweep_options(run)
    run.add_argument("--address", help="a running Ray cluster (ray://HOST:10001, HOST:6379 or auto)")
    run.add_argument("--num-cpus", type=int, help="CPUs of the in-process Ray (default: all)")
    run.add_argument("--json", metavar="PATH", help="also write the result as JSON to PATH ('-' for stdout)")
    run.add_argument("--sweep-id", help=argparse.SUPPRESS)  # set by `submit`: the job's submission id
    run.add_argument("--emit-result", action="store_true", help=argparse.SUPPRESS)  # a submitted job's last line

    resume = sub.add_parser("resume", help="finish a sweep whose driver died or was interrupted, where it stopped")
    resume.add_argument("sweep_id", help="the sweep's id (printed by run; its parent run's tune_service.sweep_id)")
    resume.add_argument("--tracking-uri", help="the MLflow store the sweep ran with")
    resume.add_argument("--storage-path", help="Tune's storage the sweep ran with")
    resume.add_argument("--address", help="a running Ray cluster (default: Ray in-process)")
    resume.add_argument("--num-cpus", type=int, help="CPUs of the in-process Ray (default: all)")
    resume.add_argument("--json", metavar="PATH", help="also write the result as JSON to PATH ('-' for stdout)")

    submit = sub.add_parser("submit", help="submit a sweep to a Ray cluster as a Ray Job; prints its id")
    sweep_options(submit)
    _address(submit)
    submit.add_argument("--submission-id", help="the job's id (default: NAME-TIMESTAMP-RANDOM)")
    submit.add_argument("--entrypoint-num-cpus", type=float, default=0, help="CPUs reserved for the driver")

    for name, text in (
        ("status", "a submitted sweep's status"),
        ("logs", "a submitted sweep's driver output"),
        ("stop", "stop a submitted sweep"),
        ("wait", "wait for a submitted sweep to end; exit 0 if it succeeded"),
        ("best", "a finished sweep's best trial, as JSON"),
    ):
        p = sub.add_parser(name, help=text)
        p.add_argument("job_id", help="the id `submit` printed")
        _address(p)
        if name == "logs":
            p.add_argument("--follow", "-f", action="store_true", help="keep printing until the sweep ends")
        if name in ("wait", "best"):
            p.add_argument("--timeout", type=float, help="seconds to wait at most")
    _address(sub.add_parser("list", help="the cluster's sweeps"))

    val = sub.add_parser("validate", help="check a spec, its data and its model; run nothing")
    val.add_argument("spec")
    val.add_argument("--spec-only", action="store_true", help="check the spec alone (no data or model loading)")

    sub.add_parser("schema", help="print the spec's JSON Schema")
    return parser


def _address(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--address", help="the Ray head's dashboard, http://HEAD:8265 (default: $RAY_API_SERVER_ADDRESS, $RAY_ADDRESS)"
    )


def _terminate(signum, frame):  # a Ray Job is stopped with SIGTERM: end as on Ctrl-C, runs marked KILLED
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from .jobs import ClusterUnreachable, SweepJobError
    from .tracking import SweepNotFound, TrackingError

    try:
        if args.command == "schema":
            print(json.dumps(SweepSpec.model_json_schema(), indent=2))
            return 0
        if args.command == "validate":
            spec = load_spec(args.spec)
            if not args.spec_only:
                from .validate import check_task

                check_task(spec)
            search = spec.search
            goal = ", ".join(f"{o} {m}" for m, o in search.all_objectives)
            print(f"{args.spec}: valid sweep spec '{spec.name}' ({search.strategy}+{search.scheduler}; {goal})")
            return 0
        if args.command in ("run", "resume"):
            return _run(args)
        return _jobs(args)
    # bad input, refused before anything runs: the spec, a sweep id, the tracking target or the cluster
    except (SpecError, SweepNotFound, TrackingError, ClusterUnreachable) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except (SweepJobError, TimeoutError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt as exc:
        print(f"interrupted: {exc}" if str(exc) else "interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def _run(args) -> int:
    from .driver import run_sweep
    from .jobs import RESULT_PREFIX

    signal.signal(signal.SIGTERM, _terminate)
    where = {"tracking_uri": args.tracking_uri, "address": args.address, "storage_path": args.storage_path}
    if args.command == "resume":
        from .driver import resume_sweep

        result = resume_sweep(args.sweep_id, num_cpus=args.num_cpus, **where)
    else:
        result = run_sweep(
            args.spec, smoke_test=args.smoke_test, num_cpus=args.num_cpus, sweep_id=args.sweep_id, **where
        )
    if args.json == "-":
        print(result.to_json(indent=2))
    elif args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            fh.write(result.to_json(indent=2))
    if getattr(args, "emit_result", False):
        print(RESULT_PREFIX + result.to_json(), flush=True)
    return 0 if result.best_trial_id is not None else EXIT_FAILED


def _jobs(args) -> int:
    from .jobs import SweepJob, list_sweeps, submit_sweep

    if args.command == "submit":
        job = submit_sweep(
            args.spec,
            args.address,
            smoke_test=args.smoke_test,
            tracking_uri=args.tracking_uri,
            storage_path=args.storage_path,
            submission_id=args.submission_id,
            entrypoint_num_cpus=args.entrypoint_num_cpus,
        )
        print(job.job_id)
        return 0
    if args.command == "list":
        for j in list_sweeps(args.address):
            meta = j.get("metadata") or {}
            print(f"{j['job_id']}\t{j['status']}\t{meta.get('tune_service.sweep', '')}")
        return 0
    job = SweepJob(args.job_id, args.address)
    if args.command == "status":
        info = job.info()
        print(f"{job.job_id}\t{info['status']}\t{info.get('message') or ''}".rstrip())
        return 0
    if args.command == "logs":
        if args.follow:
            for chunk in job.follow():
                print(chunk, end="", flush=True)
        else:
            print(job.logs(), end="")
        return 0
    if args.command == "stop":
        print(f"{job.job_id}\t{'stopping' if job.stop() else job.status()}")
        return 0
    if args.command == "wait":
        status = job.wait(args.timeout)
        print(f"{job.job_id}\t{status}")
        return 0 if status == "SUCCEEDED" else EXIT_FAILED
    result = job.result(args.timeout)  # best
    best = {
        "sweep_id": result.sweep_id,
        "best_trial_id": result.best_trial_id,
        "metric": result.metric,
        "best_value": result.best_value,
        "best_config": result.best_config,
        "best_run_id": result.best_run_id,
        "model_version": result.model_version,
        "tracking_uri": result.tracking_uri,
    }
    print(json.dumps(best, indent=2))
    return 0 if result.best_trial_id is not None else EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
