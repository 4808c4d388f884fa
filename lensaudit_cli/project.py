"""Find the project root (where workspace.yaml and definitions.py live) and load the
code location from it, the same way ``dagster`` loads workspace.yaml."""

from __future__ import annotations

import os
import sys
from pathlib import Path


def project_root() -> Path:
    """$LENSAUDIT_PROJECT, else the nearest parent of the cwd holding definitions.py and
    workspace.yaml, else the checkout this package was installed from (editable)."""
    env = os.environ.get("LENSAUDIT_PROJECT")
    candidates = [Path(env)] if env else []
    cwd = Path.cwd().resolve()
    candidates += [cwd, *cwd.parents, Path(__file__).resolve().parent.parent]
    for c in candidates:
        if (c / "definitions.py").is_file() and (c / "workspace.yaml").is_file():
            return c
    raise SystemExit("lensaudit: cannot find the project (definitions.py + workspace.yaml); "
                     "run from the checkout or set LENSAUDIT_PROJECT")


def load_definitions():
    root = project_root()
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    import definitions

    return definitions.defs, root
