"""A whole run through the task bodies, in the order the DAG runs them, without a scheduler."""

from dagml import shards, tasks


def run_tasks(config, stores=None, partition="2026-01-01", run_id="r1"):
    """load, profile, prepare, every family's search (each shard's), select, promote and report, on ``stores``
    (the embedded default's when None). Returns (keys, prepared, selection, promotion)."""
    stores = stores or tasks.Stores.from_settings()
    keys = tasks.RunKeys(config.dag_id, partition, run_id)
    loaded = tasks.load(config, config.source.uri, keys, stores)
    summary = tasks.profile(config, loaded, keys, stores)
    prepared = tasks.prepare(config, loaded, summary, keys, stores)
    for family in config.families:
        for shard in shards.of(family):
            tasks.search_family(config, family.name, prepared, keys, stores, shard)
    selection = tasks.select(config, keys, stores, prepared)
    promotion = tasks.promote(config, selection, prepared, keys, stores)
    tasks.report(config, promotion, keys, stores)
    return keys, prepared, selection, promotion
