"""A script that knows nothing of xorch but writes metrics.json in its output folder.

xorch launch conf/examples/command/metrics_json.yaml
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

seed, out = int(sys.argv[1]), Path(sys.argv[2])
rng = random.Random(seed)
# Stands in for any training: a noisy estimate whose spread over seeds is the point.
score = sum(rng.gauss(0.8, 0.05) for _ in range(100)) / 100
(out / "metrics.json").write_text(json.dumps({"score": score}))
print(f"seed {seed}: score {score:.4f}")
