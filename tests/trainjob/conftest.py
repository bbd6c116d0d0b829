"""The TrainJob tests import their helpers (_k8s_stand_in, _trainer_api) and components/ from the checkout."""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
for folder in (HERE, REPO_ROOT):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))
