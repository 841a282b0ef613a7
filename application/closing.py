"""One way for the shop's long-lived objects to be used in a ``with`` block."""

from __future__ import annotations

from abc import ABC, abstractmethod
from types import TracebackType
from typing import Self


class ClosedOnExit(ABC):
    """Something holding connections or threads: ``with`` hands it back and
    closes it on the way out, whether the block ends or raises."""

    @abstractmethod
    def close(self) -> None:
        """Releases what this object holds; safe to call more than once."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
