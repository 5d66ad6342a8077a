"""Progress bars with rate and ETA for long jobs (tqdm, on stderr)."""

from __future__ import annotations

import os
import sys

from tqdm import tqdm


def bar(total: int, desc: str, unit: str = "cell") -> tqdm:
    return tqdm(
        total=total,
        desc=desc,
        unit=unit,
        dynamic_ncols=True,
        smoothing=0.1,
        file=sys.stderr,
        disable=total == 0 or os.environ.get("CODEULTRA_NO_PROGRESS") == "1",
        bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}, {rate_fmt}{postfix}]",
    )
