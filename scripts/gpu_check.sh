#!/usr/bin/env bash
# GPU checks, for a machine with one NVIDIA GPU and torch + Lightning installed.
# Run from the repository root:  bash scripts/gpu_check.sh      (about 5 minutes)
# Every figure is printed on a line of its own; each part ends with PART n PASS/FAIL
# where it checks something, or with its figures where it measures something.
#  1. a real CUDA out-of-memory on one seed of three: classified cuda_oom, retried,
#     the other runs complete;
#  2. throughput of runs_per_gpu 2 against 1 (runs per minute, peak GPU memory);
#  3. per-run start overhead (attempt start to first batch), spawn and forkserver;
#  4. a run killed mid-training and resumed from last.ckpt, against an
#     uninterrupted run of the same seed (deterministic_cudnn: true);
#  5. gpus_per_run 1 with devices 1, and the ddp strategy with devices 1.
# ACCEL=cpu runs the same script on a machine without a GPU, to check the script
# itself (no GPU figures then).
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
PY=${PYTHON:-python3}
ACCEL=${ACCEL:-gpu}
work=$(mktemp -d "${TMPDIR:-/tmp}/xorch gpu.XXXX")
trap 'rm -rf "$work"' EXIT
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
"$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"

echo "== part 1: cuda_oom is classified, retried, and the other runs complete"
cp tests/fixtures/faulty.py "$work/faulty.py"
cat > "$work/oom.yaml" <<YAML
mode: run-experiments
experiments_runner:
  seeds: [1, 2, 3]
  output_base_dir: $work/oom_study
  max_retries: 1
  summary_metrics: [val/loss]
model:
  class_path: faulty.FaultyClassifier
  init_args: {faults: {"2": cuda_oom}, features: 16, hidden: 64}
data:
  class_path: worker.tasks.quick.QuickDataModule
  init_args: {train_size: 512, val_size: 128}
pl_trainer: {max_epochs: 2, accelerator: $ACCEL, devices: 1, enable_progress_bar: false}
YAML
start=$(date +%s)
"$PY" -m orchestrator launch "$work/oom.yaml"
echo "exit status: $? (1 expected: one run failed for good)"
"$PY" - "$work/oom_study/runner_state.json" <<'PYEOF'
import json, sys
state = json.load(open(sys.argv[1]))
ok = True
for run in state["runs"]:
    outcomes = [a["outcome"] for a in run["attempts"]]
    print(f"run {run['index']} seed {run['seed']}: {run['status']} attempts={outcomes}")
    if run["seed"] == 2:
        ok &= outcomes == ["cuda_oom", "cuda_oom"]
        print("   reason:", run["attempts"][-1]["reason"][:160])
    else:
        ok &= run["status"] == "completed"
print("PART 1", "PASS" if ok else "FAIL")
PYEOF
echo "part 1 wall: $(( $(date +%s) - start )) s"

echo "== part 2: 4 small runs, runs_per_gpu 2 against 1 (parallel slots)"
for rpg in 1 2; do
  cat > "$work/rpg$rpg.yaml" <<YAML
mode: run-experiments
experiments_runner:
  seeds: [1, 2, 3, 4]
  output_base_dir: $work/rpg$rpg
  gpus: [0]
  runs_per_gpu: $rpg
model:
  class_path: worker.tasks.quick.QuickClassifier
  init_args: {features: 64, hidden: 1024}
data:
  class_path: worker.tasks.quick.QuickDataModule
  init_args: {features: 64, train_size: 20000, val_size: 2000, batch_size: 256}
pl_trainer: {max_epochs: 3, accelerator: $ACCEL, devices: 1, enable_progress_bar: false, logger: false}
YAML
  s=$(date +%s.%N)
  "$PY" -m orchestrator launch "$work/rpg$rpg.yaml" > "$work/rpg$rpg.out" 2>&1 || echo "runs_per_gpu $rpg: exit $?"
  e=$(date +%s.%N)
  echo "runs_per_gpu $rpg: wall $("$PY" -c "print(round($e - $s, 1))") s"
  echo "runs_per_gpu $rpg: runs per minute $("$PY" -c "print(round(4 * 60 / ($e - $s), 2))")"
  for f in "$work"/rpg$rpg/run_*/metrics.json; do
    "$PY" -c "import json,sys; r=json.load(open(sys.argv[1])); print('  ', sys.argv[1].split('/')[-2], 'peak GPU MB', r.get('peak_gpu_mem_mb'))" "$f"
  done
done

echo "== part 3: per-run overhead with CUDA start, spawn against forkserver"
for launcher in spawn forkserver; do
  cat > "$work/$launcher.yaml" <<YAML
mode: run-experiments
experiments_runner:
  seeds: [1, 2, 3, 4, 5, 6]
  output_base_dir: $work/$launcher
  launcher: $launcher
model:
  class_path: worker.tasks.quick.QuickClassifier
  init_args: {features: 8, hidden: 8}
data:
  class_path: worker.tasks.quick.QuickDataModule
  init_args: {features: 8, train_size: 64, val_size: 32}
pl_trainer: {max_epochs: 1, accelerator: $ACCEL, devices: 1, logger: false, enable_checkpointing: false, enable_progress_bar: false}
YAML
  "$PY" -m orchestrator launch "$work/$launcher.yaml" > "$work/$launcher.out" 2>&1 || echo "$launcher: exit $?"
  "$PY" - "$work/$launcher" "$launcher" <<'PYEOF'
import json, statistics, sys
from datetime import datetime
from pathlib import Path
study, launcher = Path(sys.argv[1]), sys.argv[2]
state = json.loads((study / "runner_state.json").read_text())
over = []
for run in state["runs"]:
    beat = json.loads((study / run["dir"] / "heartbeat.json").read_text())
    started = datetime.fromisoformat(run["attempts"][-1]["started_at"]).timestamp()
    over.append(beat["first_batch_time"] - started)
print(f"{launcher}: first run start to first batch {over[0]:.2f} s")
print(f"{launcher}: median of the other {len(over) - 1} runs {statistics.median(over[1:]):.2f} s")
PYEOF
done

echo "== part 4: a run killed mid-training resumes from last.ckpt with the uninterrupted numbers"
for name in straight killed; do
  faults='{}'
  [ "$name" = killed ] && faults='{"7": sigkill_once}'
  cat > "$work/$name.yaml" <<YAML
mode: run-experiments
deterministic_cudnn: true
experiments_runner:
  seeds: [7]
  output_base_dir: $work/$name
  max_retries: 1
model:
  class_path: faulty.FaultyClassifier
  init_args: {faults: $faults, at_epoch: 2, features: 32, hidden: 256}
data:
  class_path: worker.tasks.quick.QuickDataModule
  init_args: {features: 32, train_size: 4096, val_size: 512, batch_size: 64}
pl_trainer: {max_epochs: 4, accelerator: $ACCEL, devices: 1, enable_progress_bar: false}
YAML
  "$PY" -m orchestrator launch "$work/$name.yaml" > "$work/$name.out" 2>&1 || echo "$name: exit $?"
done
"$PY" - "$work/straight" "$work/killed" <<'PYEOF'
import json, sys
from pathlib import Path
straight, killed = (Path(p) for p in sys.argv[1:])
state = json.loads((killed / "runner_state.json").read_text())
run = state["runs"][0]
classes = [a["outcome"] for a in run["attempts"]]
print("killed run attempts:", classes)
a = json.loads((straight / run["dir"] / "metrics.json").read_text())["metrics"]
b = json.loads((killed / run["dir"] / "metrics.json").read_text())["metrics"]
resumed = run["attempts"][-1].get("resumed_from")
print("second attempt resumed from:", resumed)
diffs = {k: abs(a[k] - b[k]) for k in a if k in b and isinstance(a[k], float)}
print("largest metric difference against the uninterrupted run:", max(diffs.values(), default=None))
print("bit-exact:", a == b)
ok = run["status"] == "completed" and len(classes) == 2 and bool(resumed)
print("PART 4", "PASS" if ok else "FAIL")
PYEOF

echo "== part 5: gpus_per_run 1 with devices 1, and the ddp strategy with devices 1"
for strategy in auto ddp; do
  cat > "$work/rank0_$strategy.yaml" <<YAML
mode: run-experiments
experiments_runner:
  seeds: [1, 2]
  output_base_dir: $work/rank0_$strategy
  gpus_per_run: 1
model:
  class_path: worker.tasks.quick.QuickClassifier
  init_args: {features: 16, hidden: 64}
data:
  class_path: worker.tasks.quick.QuickDataModule
  init_args: {features: 16, train_size: 512, val_size: 128}
pl_trainer: {max_epochs: 2, accelerator: $ACCEL, devices: 1, strategy: $strategy, enable_progress_bar: false}
YAML
  "$PY" -m orchestrator launch "$work/rank0_$strategy.yaml" > "$work/rank0_$strategy.out" 2>&1 || echo "strategy $strategy: exit $?"
  grep -m1 -o "launcher: [a-z]*[^;]*" "$work/rank0_$strategy.out" | sed "s/^/strategy $strategy: /" || true
  "$PY" - "$work/rank0_$strategy" "$strategy" <<'PYEOF'
import json, sys
from pathlib import Path
study, strategy = Path(sys.argv[1]), sys.argv[2]
if not (study / "runner_state.json").exists():
    said = (study.parent / f"rank0_{strategy}.out").read_text().strip().splitlines()
    print(f"strategy {strategy}: no study;", said[-1] if said else "no output")
    print(f"PART 5 ({strategy}) FAIL")
    sys.exit(0)
state = json.loads((study / "runner_state.json").read_text())
ok = True
for run in state["runs"]:
    folder = study / run["dir"]
    metrics = json.loads((folder / "metrics.json").read_text())
    ckpts = sorted(p.name for p in folder.glob("**/*.ckpt"))
    print(f"strategy {strategy}: run {run['index']} {run['status']}; val/loss "
          f"{metrics['metrics'].get('val/loss')}; checkpoints {ckpts}")
    ok &= run["status"] == "completed" and "val/loss" in metrics["metrics"]
print(f"PART 5 ({strategy})", "PASS" if ok else "FAIL")
PYEOF
done
