"""The ``lensaudit`` command line (Dagster lives here and in assets/, never in lensaudit/)."""
