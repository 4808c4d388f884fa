"""Where a run lives and which profile it runs.

Both are resolved when a run *executes*, not when the code location is imported, so the
Dagster UI's launchpad can pick them per run::

    resources:
      settings:
        config:
          profile: tiny        # tiny | demo | full

``data_config`` names a real-data configuration file (``configs/dr10_south.yaml``;
``lensaudit.data_config``) for the run: the ``sweeps`` and ``cutout_source`` resources then take
their locations from it (``settings.data()``, read when the run executes); empty:
``$LENSAUDIT_DATA_CONFIG`` of the run's process, else their own configuration.

Left empty, the profile is the one ``lensaudit materialize`` recorded for the store
(``$LENSAUDIT_HOME/run_profile.json``), else ``$LENSAUDIT_PROFILE`` of the run's process,
else ``demo``; the home is ``$LENSAUDIT_HOME`` of the run's process, else ./lensaudit_home.

A home ``s3://bucket/prefix`` is worked on in its local cache (``lensaudit.s3store``): when
the resource is set up for a run (once per run in-process, once per step under the
multiprocess executor) the bucket's objects are pulled, with their sha256 checked; when it
is torn down (also after a failed step) what the run wrote is pushed, shards before indexes.
"""


import json
import os
from pathlib import Path

import dagster as dg
from pydantic import Field

from lensaudit.config import PROFILES, RUN_PROFILE_FILE, Profile, profile_for
from lensaudit.data_config import DataConfig, DataConfigError, data_config_at_run_time
from lensaudit.store import home_setting, lensaudit_home



class LensauditSettings(dg.ConfigurableResource):
    """home: the store root; profile: tiny, demo or full (see the module docstring for defaults)."""

    home: str = Field(default="", description="store root (a directory or s3://bucket/prefix); empty: "
                                              "$LENSAUDIT_HOME at run time, else ./lensaudit_home")
    profile: str = Field(default="", description="tiny, demo or full; empty: the store's run_profile.json, "
                                                 "else $LENSAUDIT_PROFILE at run time, else demo")
    data_config: str = Field(default="", description="real-data configuration file (YAML, e.g. configs/dr10_south.yaml: "
                                                     "sweeps, cutout source, survey-bricks table, rate limit); empty: "
                                                     "$LENSAUDIT_DATA_CONFIG at run time, else the sweeps and "
                                                     "cutout_source resources as configured")

    def data(self) -> DataConfig | None:
        """The run's data configuration, read and validated now (at execution, never at
        import): ``data_config``, else ``$LENSAUDIT_DATA_CONFIG``, else None."""
        try:
            return data_config_at_run_time(self.data_config)
        except DataConfigError as exc:
            raise dg.Failure(str(exc)) from None

    def home_path(self) -> Path:
        """The local store root (for an s3:// home, its cache)."""
        return lensaudit_home(self.home or None)

    def s3_store(self):
        """The ``S3Store`` of an s3:// home, else None."""
        from lensaudit.s3store import S3StoreError, S3Store, is_s3_uri

        uri = home_setting(self.home or None)
        if not is_s3_uri(uri):
            return None
        try:
            return S3Store(uri)
        except S3StoreError as exc:
            raise dg.Failure(f"settings.home: {exc}") from None

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        store = self.s3_store()
        if store is None:
            return
        from lensaudit.s3store import S3IntegrityError, S3StoreError

        try:
            report = store.pull()
            if report.corrupt:
                raise S3IntegrityError(store.uri, report.corrupt)
        except S3StoreError as exc:
            raise dg.Failure(f"pulling {store.uri} into {store.root}: {exc}") from None
        if context.log is not None and report.fetched:
            context.log.info(f"{store.uri}: {len(report.fetched)} object(s) fetched into {store.root}")

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        store = self.s3_store()
        if store is None:
            return
        report = store.push()
        if context.log is not None and report.uploaded:
            context.log.info(f"{store.uri}: {len(report.uploaded)} file(s) uploaded from {store.root}")

    def profile_name(self) -> str:
        """The profile this run uses, resolved now (at execution), never at import."""
        if self.profile:
            name = self.profile
        else:
            stored = self.home_path() / RUN_PROFILE_FILE
            name = ""
            if stored.is_file():
                try:
                    name = str(json.loads(stored.read_text())["profile"])
                except (ValueError, KeyError, TypeError) as exc:
                    raise dg.Failure(f"unreadable profile record {stored}: {exc}") from exc
            name = name or os.environ.get("LENSAUDIT_PROFILE", "") or "demo"
        if name not in PROFILES:
            raise dg.Failure(f"unknown lensaudit profile {name!r}; choose one of {sorted(PROFILES)} "
                             "(resources.settings.config.profile, run_profile.json or LENSAUDIT_PROFILE)")
        return name

    def profile_obj(self) -> Profile:
        """The resolved profile, with the store's recorded detector overrides (training seed,
        CPU threads: ``lensaudit materialize --train-seed/--cpu-threads``) when the store's run
        record names the same profile."""
        name = self.profile_name()
        stored = self.home_path() / RUN_PROFILE_FILE
        try:
            return profile_for(name, json.loads(stored.read_text()) if stored.is_file() else None)
        except ValueError as exc:
            raise dg.Failure(f"bad profile record {stored}: {exc}") from exc
