"""Where a run lives and which profile it runs."""


import os
from pathlib import Path

import dagster as dg

from lensaudit.config import Profile, get_profile
from lensaudit.store import lensaudit_home


class LensauditSettings(dg.ConfigurableResource):
    """home: $LENSAUDIT_HOME (default ./lensaudit_home); profile: tiny, demo or full."""

    home: str = ""
    profile: str = "demo"

    def home_path(self) -> Path:
        return lensaudit_home(self.home or None)

    def profile_obj(self) -> Profile:
        return get_profile(self.profile)

    @classmethod
    def from_env(cls) -> "LensauditSettings":
        return cls(home=os.environ.get("LENSAUDIT_HOME", ""), profile=os.environ.get("LENSAUDIT_PROFILE", "demo"))
