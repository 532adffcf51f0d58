"""A run's partition: its key and data interval, from its Airflow context. The one place that decides it.

In order: the trigger form's ``partition``; the run's ``partition_key`` (a partitioned asset or
timetable); a key the triggering asset event put in its extra (``partition``); the run's data
interval (scheduled and backfilled runs, and manual runs given a logical date); for a manual run
without one, the schedule's latest completed interval (today, for a DAG without a schedule).
Keys are the interval's start (``2026-01-05``, or ``2026-01-05T06:00`` when it does not start at
midnight), so they sort in time order and "newest partition" is a string comparison.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from dagml.errors import DataError

KEY = re.compile(r"^[A-Za-z0-9_.=:+-]{1,200}$")
# Airflow's cron presets (airflow.sdk.definitions.timetables._cron), kept here so configs read
# at parse time import nothing of Airflow.
CRON_PRESETS = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@quarterly": "0 0 1 */3 *",
    "@yearly": "0 0 1 1 *",
}


@dataclass(frozen=True)
class Partition:
    key: str
    start: datetime | None = None  # the data interval, when the partition has one
    end: datetime | None = None

    def template_context(self) -> dict:
        """What the source's templates see of the partition (``{{ partition }}``, ``{{ ds }}``...)."""
        out = {"partition": self.key}
        if self.start is not None:
            out |= {"data_interval_start": self.start, "data_interval_end": self.end,
                    "ds": self.start.strftime("%Y-%m-%d"), "ds_nodash": self.start.strftime("%Y%m%d")}
        return out


def format_key(start: datetime) -> str:
    if (start.hour, start.minute, start.second) == (0, 0, 0):
        return start.strftime("%Y-%m-%d")
    return start.strftime("%Y-%m-%dT%H:%M")


def checked(key, where: str) -> str:
    key = str(key).strip()
    if not KEY.match(key):
        raise DataError(f"{where}: {key!r} is not a partition key (letters, digits and _ . = : + -, e.g. 2026-01-05)")
    return key


def cron_of(schedule) -> str | None:
    if not isinstance(schedule, str):
        return None
    return CRON_PRESETS.get(schedule, schedule)


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)


def interval_from_key(key: str, schedule) -> Partition:
    """A partition named by its key: the interval of the schedule that starts there (a day without one)."""
    try:
        start = _utc(datetime.fromisoformat(key))
    except ValueError:
        return Partition(key)  # a key that names no time (an asset's "region=eu"): no interval
    cron = cron_of(schedule)
    if cron is None:
        return Partition(key, start, start + timedelta(days=1))
    from croniter import croniter

    return Partition(key, start, _utc(croniter(cron, start).get_next(datetime)))


def latest_completed(schedule, now: datetime) -> Partition:
    """The schedule's last interval that ended by ``now`` (for no schedule: the day of ``now``)."""
    now = _utc(now)
    cron = cron_of(schedule)
    if cron is None:
        start = now.replace(hour=0, minute=0, second=0, microsecond=0)
        return Partition(format_key(start), start, start + timedelta(days=1))
    from croniter import croniter

    itr = croniter(cron, now + timedelta(microseconds=1))  # an interval ending exactly now is complete
    end = _utc(itr.get_prev(datetime))
    start = _utc(itr.get_prev(datetime))
    return Partition(format_key(start), start, end)


def _from_asset_events(context) -> str | None:
    """The newest partition the triggering events name. A run of a plain asset schedule takes every
    event since the last run; the older partitions among them are logged, not trained on."""
    keys = set()
    for events in (context.get("triggering_asset_events") or {}).values():
        for event in events:
            key = getattr(event, "partition_key", None) or (getattr(event, "extra", None) or {}).get("partition")
            if key:
                keys.add(checked(key, "the triggering asset event's partition"))
    if len(keys) > 1:
        import logging

        logging.getLogger("dagml.partitions").warning(
            "the triggering events name %d partitions (%s): training on the newest; a schedule with "
            "`partitioned: true` runs once per partition instead", len(keys), ", ".join(sorted(keys)))
    return max(keys) if keys else None


def resolve(context, schedule) -> Partition:
    """The partition of the run whose task context is ``context``, for a DAG on ``schedule``."""
    params = context.get("params") or {}
    if params.get("partition"):
        return interval_from_key(checked(params["partition"], "the trigger form's partition"), schedule)
    dag_run = context.get("dag_run")
    if getattr(dag_run, "partition_key", None):
        return interval_from_key(checked(dag_run.partition_key, "the run's partition_key"), schedule)
    if key := _from_asset_events(context):
        return interval_from_key(key, schedule)
    if context.get("triggering_asset_events"):
        raise DataError("the asset events that triggered this run carry no partition: post the event with a "
                        "partition_key, or put {\"partition\": \"2026-01-05\"} in its extra")
    start, end = context.get("data_interval_start"), context.get("data_interval_end")
    if start is not None and end is not None and end > start:
        return Partition(format_key(_utc(start)), _utc(start), _utc(end))
    # a manual run: the interval completed by its logical date, or by when it was triggered
    moment = start or context.get("logical_date") or getattr(dag_run, "run_after", None) or datetime.now(timezone.utc)
    return latest_completed(schedule, moment)


def partition_key(context, schedule=None) -> str:
    return resolve(context, schedule).key
