"""A toy training for the search example: no torch, a fraction of a second.

Its "validation loss" is a smooth function of the values the search sets
(best at lr 0.01, depth 3, wide), plus the luck of the seed: a part shared by
every config on that seed and a part of this config on this seed, both large
next to the differences between good configs, as in real training."""

import json
import math
import os
import random
import sys
import zlib

run_dir = sys.argv[1]
with open(os.path.join(run_dir, "run_spec.json"), encoding="utf-8") as handle:
    spec = json.load(handle)  # the run's whole config, with the trial's values set
toy, seed = spec["config"]["toy"], spec["seed"]
loss = 0.30 + 0.02 * (math.log10(toy["lr"]) + 2.0) ** 2 + 0.005 * abs(toy["depth"] - 3)
loss += toy["width"]["penalty"]
config_luck = zlib.crc32(json.dumps(toy, sort_keys=True).encode())
loss += random.Random(seed).gauss(0.0, 0.03)  # this seed's luck, shared by every config
loss += random.Random(config_luck * 7919 + seed).gauss(0.0, 0.03)  # this config on this seed
with open(os.path.join(run_dir, "metrics.json"), "w", encoding="utf-8") as handle:
    json.dump({"val/loss": loss}, handle)
