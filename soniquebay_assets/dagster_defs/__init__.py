"""The thin Dagster layer: assets, partitions, resources, sensors, schedules, checks, executor, the scan's runs."""
