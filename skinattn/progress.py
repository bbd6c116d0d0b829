"""Progress output that suits a terminal and a log file alike.

A tqdm bar redraws itself with a carriage return about ten times a second; in a terminal that is one
line, but in a log file (``skinattn train > run.log``, a pod's log, a CI job) every redraw is kept, one
per step. So, when stderr is not a terminal (and not a notebook, where tqdm.auto draws a widget):

- per-step bars that a per-epoch summary line already covers (training) are not drawn at all
  (:func:`step_bars`);
- the other bars (cache building, prediction, scoring) redraw at most every
  :data:`LOG_PROGRESS_INTERVAL_S` seconds (:func:`bar_options`), the interval the pipelines' scoring
  steps set for pod logs through ``TQDM_MININTERVAL`` (``skinattn.steps.scoring``). A
  ``TQDM_MININTERVAL`` set in the environment wins.
"""

from __future__ import annotations

import os
import sys
from typing import IO, Any

# Seconds between two redraws of a progress bar whose output is not a terminal (a log file, a pod log).
LOG_PROGRESS_INTERVAL_S = 30


def is_interactive(stream: IO[str] | None = None) -> bool:
    """Whether progress bars drawn on ``stream`` (default stderr, where tqdm draws) are seen live: a
    terminal, or a notebook (tqdm.auto's widget bars)."""
    stream = sys.stderr if stream is None else stream
    try:
        if stream is not None and stream.isatty():
            return True
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        pass
    from tqdm.autonotebook import tqdm as auto_tqdm  # what tqdm.auto builds on
    from tqdm.std import tqdm as std_tqdm

    return auto_tqdm is not std_tqdm  # it chose the notebook widget: an IPython kernel


def step_bars(enabled: bool, stream: IO[str] | None = None) -> bool:
    """Whether to draw a per-step bar: asked for, and seen live (see the module docstring)."""
    return enabled and is_interactive(stream)


def bar_options(stream: IO[str] | None = None) -> dict[str, Any]:
    """Extra ``tqdm(...)`` keywords: a long ``mininterval`` when the bar is not seen live, unless the
    environment sets ``TQDM_MININTERVAL`` itself."""
    if is_interactive(stream) or "TQDM_MININTERVAL" in os.environ:
        return {}
    return {"mininterval": LOG_PROGRESS_INTERVAL_S}
