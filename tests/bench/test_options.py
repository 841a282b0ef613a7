"""The harness's options: sizes given on the command line win over the
defaults and over ``--smoke``."""

from __future__ import annotations

import pytest

from bench.__main__ import build_parser, check_sizes, main, sizes_from
from bench.workloads.common import SMOKE_SIZES, Sizes


def sizes(*arguments: str) -> Sizes:
    return sizes_from(build_parser().parse_args(list(arguments)))


def test_without_options_the_default_sizes_apply() -> None:
    assert sizes() == Sizes()


def test_smoke_shrinks_everything_but_a_given_size_wins() -> None:
    smoke = sizes("--smoke", "--clients", "3", "--command-processes", "1,4")
    assert smoke.clients == 3
    assert smoke.command_processes == (1, 4)
    assert smoke.store_checkouts == SMOKE_SIZES.store_checkouts


def test_lists_are_comma_separated() -> None:
    chosen = sizes("--million-projections", "stock", "--latency-hosting", "workers,")
    assert chosen.million_projections == ("stock",)
    assert chosen.latency_hosting == ("workers",)


@pytest.mark.parametrize(
    "arguments",
    [
        ("--latency-hosting", "threads"),
        ("--million-projections", "carts"),
        ("--command-processes", "0"),
        ("--relay-checkouts", "0"),
    ],
)
def test_sizes_it_cannot_run_are_refused_before_anything_runs(
    arguments: tuple[str, ...],
) -> None:
    assert check_sizes(sizes(*arguments)) is not None
    with pytest.raises(SystemExit):
        main([*arguments, "--postgres", "", "--no-sqlite"])


def test_the_default_sizes_can_run() -> None:
    assert check_sizes(Sizes()) is None
    assert check_sizes(SMOKE_SIZES) is None
