"""One tick of a partition-adding sensor, evaluated and applied as Dagster's daemon does."""

import dagster as dg


def partition_tick(sensor, instance, resources: dict, partitions_def_name: str):
    """(keys added, skip message) of one evaluation of ``sensor``; its dynamic-partition requests
    (all for ``partitions_def_name``) are applied to ``instance``; it must request no run."""
    with dg.build_sensor_context(instance=instance, resources=resources) as ctx:
        data = sensor.evaluate_tick(ctx)
    added = []
    for req in data.dynamic_partitions_requests or []:
        assert isinstance(req, dg.AddDynamicPartitionsRequest) and req.partitions_def_name == partitions_def_name
        instance.add_dynamic_partitions(req.partitions_def_name, list(req.partition_keys))
        added += list(req.partition_keys)
    assert not data.run_requests, f"{sensor.name} requests no run"
    return added, data.skip_message
