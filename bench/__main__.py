"""eventshop's benchmark harness: every workload of issue 8, on SQLite and on
PostgreSQL, each beside its baseline measured in the same run.

    .venv/bin/python -m bench                     # everything, default sizes
    .venv/bin/python -m bench --smoke             # tiny sizes (CI), < 1 minute
    .venv/bin/python -m bench --workloads saga,latency --postgres ''

Stores are throw-away: SQLite in a temporary folder, PostgreSQL in a temporary
schema of ``--postgres`` (default ``postgresql://postgres@127.0.0.1:5432/test``;
``--postgres ''`` skips PostgreSQL, ``--no-sqlite`` skips SQLite). The run
prints a table, writes every figure with its raw counts and the machine
(cores, CPU, Python, PostgreSQL, commit, load) as JSON (``--out``, default
``bench/results/latest.json``) and draws PNG charts (``--charts``, default
``docs/bench/``; ``--from-json FILE`` redraws them and reprints the table
from an earlier run's JSON). It asserts nothing about speed, but exits 1 if a workload
could not run to its end (a crash, a backlog that never settled, a rebuild
that disagrees with the live read model); the other workloads still run.

Workloads (``--workloads``, comma-separated; default all):

``read-models``
    A store of ``--store-checkouts`` checkouts (default 8,000: about 107,000
    events) written by ``--clients`` processes through the real saga, with
    payments, shipments, cancellations and rejections. Every read model caught
    up from 0 by an embedded shop, then rebuilt (``shop.rebuild(name,
    mode="verify")``), each against the read limit of its log: the library's
    recorder reading it in pages of 500 and the mapper decoding each
    notification, nothing else. Target: >= 0.5x.
``million``
    ``--million-events`` (default 1,000,000) inventory events, made in memory
    and saved in chunks through the Inventory service; each of
    ``--million-projections`` (default ``stock,audit_inventory``) caught up by
    one ``eventshop worker`` and rebuilt, each in a child process of its own,
    with the children's peak RSS. Target: < 300 MB.
``saga``
    ``--saga-checkouts`` (default 2,000) checkouts written by ``--clients``
    processes while nothing reacts, then settled (every order confirmed or
    rejected, every view caught up) by an embedded shop, and on a second store
    by ``eventshop worker`` processes. Target: settled >= 1x the writing rate.
``latency``
    ``--latency-rate`` (default 50) checkouts/s for ``--latency-seconds``
    (default 25, after ``--latency-warmup`` 2) from an open-loop schedule;
    time from ``checkout()`` to the order showing as confirmed or rejected in
    the order view: p50, p95, p99, max. Hosting: ``--latency-hosting``
    (default ``embedded,workers``). Goal: p99 <= 250 ms.
``commands``
    ``register_product`` (fresh SKUs) and ``receive_stock`` on embedded shops
    against a plain eventsourcing application doing the same saves, in
    ``--command-processes`` (default ``1,8``) spawned processes for
    ``--command-seconds`` (default 5) each. Target: >= 0.8x.
``relay``
    ``--relay-checkouts`` (default 8,000: about 35,000 Carts events) written
    by ``--clients`` processes; the ``carts`` read model caught up on the
    Carts table directly (the baseline), then ``relay_once`` of the log into
    JetStream, the read model caught up from the stream (broker-fed), and the
    relay and the broker-fed read model running at once (end to end), each
    from nothing, on a private ``nats-server`` (skipped if it is not on
    PATH). No target: how much the broker costs.

The full default run takes roughly 20-30 minutes on a quiet 2-core machine
with subscribers at the speed of the log, and longer on code whose
subscribers are slow. ``python -m bench.audit_queries`` (audit query latency
on a large index) is separate.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from rich.console import Console

from bench.charts import draw_charts
from bench.machine import describe_machine
from bench.report import print_results
from bench.results import Result, read_json, write_json
from bench.stores import DEFAULT_POSTGRES_URL, EngineName
from bench.workloads import commands, latency, million, read_models, relay, saga
from bench.workloads.common import READ_MODEL_LOGS, SMOKE_SIZES, Bench, Sizes

WORKLOADS: dict[str, Callable[[Bench], None]] = {
    "read-models": read_models.run,
    "million": million.run,
    "saga": saga.run,
    "latency": latency.run,
    "commands": commands.run,
    "relay": relay.run,
}
# Confirmed orders must not expire (and write) while a store is measured.
LONG_PAYMENT_TIMEOUT = str(7 * 24 * 3600)


def _names(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def _counts(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in _names(text))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=(__doc__ or "").splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="See the module docstring (bench/__main__.py) for each workload.",
    )
    defaults = Sizes()
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, for CI")
    parser.add_argument(
        "--workloads",
        type=_names,
        default=tuple(WORKLOADS),
        help=f"comma-separated, of: {', '.join(WORKLOADS)} (default: all)",
    )
    parser.add_argument(
        "--postgres",
        default=DEFAULT_POSTGRES_URL,
        help="PostgreSQL database to make temporary schemas in; '' to skip",
    )
    parser.add_argument("--no-sqlite", action="store_true", help="skip SQLite")
    parser.add_argument("--out", type=Path, help="JSON file for the figures")
    parser.add_argument("--charts", type=Path, help="folder for the PNG charts")
    parser.add_argument(
        "--from-json",
        type=Path,
        metavar="FILE",
        help="run nothing: print the table and draw the charts of an earlier run",
    )
    sizes = parser.add_argument_group("sizes (ignored with --smoke unless given)")
    sizes.add_argument("--clients", type=int)
    sizes.add_argument("--store-checkouts", type=int)
    sizes.add_argument("--million-events", type=int)
    sizes.add_argument("--million-projections", type=_names)
    sizes.add_argument("--saga-checkouts", type=int)
    sizes.add_argument("--latency-rate", type=float)
    sizes.add_argument("--latency-seconds", type=float)
    sizes.add_argument("--latency-warmup", type=float)
    sizes.add_argument("--latency-hosting", type=_names)
    sizes.add_argument("--command-seconds", type=float)
    sizes.add_argument("--command-processes", type=_counts)
    sizes.add_argument("--relay-checkouts", type=int)
    sizes.add_argument(
        "--timeout",
        type=float,
        help=f"seconds any one wait may take (default {defaults.timeout:g})",
    )
    return parser


def sizes_from(args: argparse.Namespace) -> Sizes:
    sizes = SMOKE_SIZES if args.smoke else Sizes()
    given = {
        name: getattr(args, name)
        for name in asdict(sizes)
        if getattr(args, name, None) is not None
    }
    return replace(sizes, **given)


def check_sizes(sizes: Sizes) -> str | None:
    """Why these sizes cannot be run, if they cannot."""
    hosting = set(sizes.latency_hosting) - {"embedded", "workers"}
    if hosting:
        return f"unknown --latency-hosting {sorted(hosting)}: embedded, workers"
    inventory = [n for n, log in READ_MODEL_LOGS.items() if log == "Inventory"]
    others = set(sizes.million_projections) - set(inventory)
    if others or not sizes.million_projections:
        return f"--million-projections: some of {', '.join(inventory)}"
    if sizes.clients < 1 or min(sizes.command_processes, default=0) < 1:
        return "--clients and --command-processes must be at least 1"
    if sizes.relay_checkouts < 1:
        return "--relay-checkouts must be at least 1"
    return None


def redraw(path: Path, charts: Path) -> int:
    results = read_json(path)
    print_results(Console(width=180), results, f"eventshop benchmarks ({path})")
    for drawn in draw_charts(results, charts):
        print(drawn)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    unknown = [name for name in args.workloads if name not in WORKLOADS]
    if unknown:
        raise SystemExit(f"unknown workloads {unknown}; known: {', '.join(WORKLOADS)}")
    if args.from_json is not None:
        return redraw(args.from_json, args.charts or Path("docs/bench"))
    sizes = sizes_from(args)
    refused = check_sizes(sizes)
    if refused:
        raise SystemExit(refused)
    results_folder = Path("bench/results")
    out = args.out or results_folder / ("smoke.json" if args.smoke else "latest.json")
    charts = args.charts or (
        results_folder / "smoke-charts" if args.smoke else Path("docs/bench")
    )
    engines: list[EngineName] = [] if args.no_sqlite else ["sqlite"]
    if args.postgres:
        engines.append("postgres")
    os.environ.setdefault("EVENTSHOP_PAYMENT_TIMEOUT_SECONDS", LONG_PAYMENT_TIMEOUT)
    console = Console(width=180)
    machine = describe_machine(args.postgres or None)
    console.log(
        f"eventshop bench on {machine['cores']} cores ({machine['cpu']}), "
        f"commit {machine['commit'][:10]}; engines {', '.join(engines)}; "
        f"workloads {', '.join(args.workloads)}"
    )
    started = time.monotonic()
    results: list[Result] = []
    facts: dict[str, Any] = {}
    failures: list[str] = []
    timings: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="eventshop-bench-") as scratch:
        for engine in engines:
            bench = Bench(engine, args.postgres, Path(scratch), sizes, console)
            for name in args.workloads:
                begun = time.monotonic()
                try:
                    WORKLOADS[name](bench)
                except Exception:
                    failures.append(f"{engine} {name}:\n{traceback.format_exc()}")
                    console.log(f"[red]{engine} {name} failed[/]")
                    console.print(failures[-1], markup=False, highlight=False)
                timings[f"{engine} {name}"] = time.monotonic() - begun
                console.log(f"{engine} {name}: {timings[f'{engine} {name}']:.0f} s")
            results += bench.results
            facts[engine] = bench.facts
    seconds = time.monotonic() - started
    machine["load_average_at_end"] = os.getloadavg()
    title = (
        f"eventshop benchmarks, {machine['cores']} cores, commit "
        f"{machine['commit'][:10]} (baselines measured in the same run)"
    )
    print_results(console, results, title)
    write_json(
        out,
        results,
        machine=machine,
        options={
            **asdict(sizes),
            "smoke": args.smoke,
            "workloads": args.workloads,
            "engines": engines,
        },
        facts={**facts, "workload_seconds": timings, "failures": failures},
        seconds=seconds,
    )
    drawn = draw_charts(results, charts)
    console.log(
        f"{len(results)} figures in {seconds:.0f} s; JSON {out}; charts "
        + ", ".join(str(path) for path in drawn)
    )
    if failures:
        console.log(f"[red]{len(failures)} workload(s) failed[/]")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
