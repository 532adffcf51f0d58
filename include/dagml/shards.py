"""``shards: k`` on a family entry: its search runs as k mapped instances of the same search task.

A shard is named ``<family>#<i>of<k>`` (``sklearn:random_forest#2of3``: the map label in the UI,
its leaderboard row until select merges the family's shards into one row). With one shard a
search is named by its family alone, so a config without ``shards`` keeps its task ids, map labels,
artifact paths and seeds. Shard i of k searches with its own seed (the config's for the first) and
a k-th of the family's evaluations and seconds, and evaluates every k-th of the family's first
points (warm-start and the family's own), so the k searches do not repeat each other.

Nothing here imports more than the standard library: the factory names the shards at parse time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

SEPARATOR = "#"
_LABEL = re.compile(r"^(?P<family>[^#]+)#(?P<index>\d+)of(?P<count>\d+)$")
# An odd stride (2**32 / golden ratio): index * stride mod 2**31 differs for every index below 2**31.
# Derived seeds stay below 2**31, as R's set.seed and the boosting libraries take 32-bit signed ints.
_SEED_STRIDE = 0x9E3779B1
_SEEDS = 2**31


@dataclass(frozen=True)
class Shard:
    family: str
    index: int = 1  # 1 to count
    count: int = 1

    def __post_init__(self):
        if not 1 <= self.index <= self.count:
            raise ValueError(f"shard {self.index} of {self.count}: the index runs from 1 to the count")

    @property
    def label(self) -> str:
        """The search's name: the map label, and its leaderboard row's family until select merges."""
        return self.family if self.count == 1 else f"{self.family}{SEPARATOR}{self.index}of{self.count}"

    @classmethod
    def parse(cls, label: str) -> Shard:
        match = _LABEL.match(label)
        if match is None:
            return cls(label)
        return cls(match["family"], int(match["index"]), int(match["count"]))

    @property
    def folder(self) -> tuple[str, ...]:
        """The part of its artifacts' path below the family's folder: trials, model, predictions."""
        return () if self.count == 1 else (f"shard-{self.index}of{self.count}",)

    @property
    def position(self) -> tuple[int, int]:
        """(0-based index, count): where its trials go among the family's (``record_trials``)."""
        return self.index - 1, self.count

    def seed(self, seed: int) -> int:
        """The config's seed for the first shard, a distinct one derived from it for each other."""
        return seed if self.index == 1 else (seed + (self.index - 1) * _SEED_STRIDE) % _SEEDS

    def evaluations(self, max_evals: int) -> int:
        """Its part of the family's evaluations: the k parts sum to ``max_evals`` (each at least 1)."""
        return max(1, max_evals // self.count + (1 if self.index <= max_evals % self.count else 0))

    def seconds(self, seconds: float | None) -> float | None:
        return None if seconds is None else seconds / self.count

    def first_points(self, points: list) -> list:
        """Every k-th of the points a search evaluates before TPE, starting at its own index."""
        return points[self.index - 1::self.count]


def of(entry) -> list[Shard]:
    """The shards of a config's family entry, in order."""
    return [Shard(entry.name, i, entry.shards) for i in range(1, entry.shards + 1)]


def costs(families, cost_of) -> dict[str, float]:
    """The relative cost of each search of a run (``budget.total_seconds`` is shared by them):
    a family's cost (``cost_of(name)``) split evenly among its shards."""
    return {shard.label: cost_of(f.name) / f.shards for f in families for shard in of(f)}
