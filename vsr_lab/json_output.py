"""Results as JSON files (benchmarks, evaluate, headroom): strict JSON, written whole or not at all."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path


def write_json(result: dict, path: str | Path) -> Path:
    """`result` as indented JSON with nan written as null (strict JSON has no nan), under a
    temporary name renamed when whole, so a crash never leaves half a file."""
    def clean(x):
        if isinstance(x, float) and math.isnan(x):
            return None
        if isinstance(x, dict):
            return {k: clean(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return [clean(v) for v in x]
        return x

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.partial")
    tmp.write_text(json.dumps(clean(result), indent=2) + "\n")
    os.replace(tmp, path)
    return path
