"""Search-time budgets: one family's seconds, or one whole run's seconds shared by its families.

A search asks ``remaining()`` before each trial (and uses it as the trial's hard time limit)
and reports its wall time with ``spend()``; ``finish()`` hands back what it did not use.

``SharedBudget`` splits ``total_seconds`` between a run's families by their relative cost, and
gives the seconds a finished family left unused to those still searching, in proportion to
their costs. Its ledger lives in the results DB, so it holds whatever worker slots (or
queues) the searches run on at once. Its invariant: the allowances of the families always sum
to the total, and no family spends past its allowance, so the run's search seconds stay
within the total.
"""

from __future__ import annotations

import time


class FamilyBudget:
    """The clock starts at the first question, the search's first trial (so reading the rows and
    building the folds are not counted: on dna's 180 text columns that alone took the whole share
    of the cheapest families). A family's search task finishes it after its best point's fit on
    all rows, so the trials and that fit are paid from its seconds (``dagml.search.search`` keeps
    the fit's estimate in hand)."""

    def __init__(self, seconds: float, spent: float = 0.0):
        self.seconds, self.spent = seconds, spent
        self._since: float | None = None

    def __str__(self) -> str:
        return f"{self.seconds:.1f} s"

    def _tick(self) -> None:
        now = time.monotonic()
        if self._since is not None:
            self.spent += now - self._since
        self._since = now

    def remaining(self) -> float:
        self._tick()
        return self.seconds - self.spent

    def spend(self) -> None:
        self._tick()

    def finish(self) -> None:
        self._tick()


class SharedBudget(FamilyBudget):
    """This family's part of the run's ``total`` seconds; ``costs`` maps every family of the run
    to its relative cost. ``cap``: the family's own seconds, when its config entry sets them."""

    def __init__(self, ledger, family: str, total: float, costs: dict[str, float], cap: float | None = None):
        self.ledger, self.family, self.total, self.costs, self.cap = ledger, family, total, costs, cap
        super().__init__(seconds=cap or total, spent=ledger.start(family))

    def __str__(self) -> str:
        return f"{self.allowance():.1f} s of the run's {self.total:.0f} s"

    def allowance(self) -> float:
        rows = {r["family"]: r for r in self.ledger.rows()}
        share = {f: self.total * c / sum(self.costs.values()) for f, c in self.costs.items()}
        finished = [f for f in self.costs if rows.get(f, {}).get("done")]
        # what the finished families left: a family that finished past its share had drawn on it
        unused = max(0.0, sum(share[f] - rows[f]["spent"] for f in finished))
        searching = {f: c for f, c in self.costs.items() if f not in finished}
        own = share[self.family]
        if self.family in searching:
            own += unused * searching[self.family] / sum(searching.values())
        return min(own, self.cap) if self.cap else own

    def remaining(self) -> float:
        self._tick()  # the ledger is written by spend(), after each trial
        return self.allowance() - self.spent

    def spend(self) -> None:
        self._tick()
        self.ledger.spend(self.family, self.spent)

    def finish(self) -> None:
        self._tick()
        self.ledger.spend(self.family, self.spent, done=True)


class Ledger:
    """One run's (one load's) budget rows in the results store."""

    def __init__(self, results, dag_id: str, partition: str, load_id: str):
        self.results, self.key = results, {"dag_id": dag_id, "partition": partition, "load_id": load_id}

    def start(self, family: str) -> float:
        return self.results.budget_start(**self.key, family=family)

    def spend(self, family: str, spent: float, done: bool = False) -> None:
        self.results.budget_spend(**self.key, family=family, spent=spent, done=done)

    def rows(self) -> list[dict]:
        return self.results.budget_rows(**self.key)
