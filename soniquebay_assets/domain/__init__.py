"""Pure domain logic: no Dagster, no I/O beyond what a function is handed."""
