#!/usr/bin/env bash
# Issue 23's GPU measurements in one prepared run (docs/benchmarks.md, "GPU (prepared, not yet run)").
#
#   scripts/gpu_check.sh prepare                  here, before the device call: wheels and NVlabs' source
#                                                 into .gpu_carry/ (git-ignored through .git/info/exclude)
#   scripts/gpu_check.sh all   [--device cpu] [--tiny]   on the device: every part, within ~9.5 minutes
#   scripts/gpu_check.sh part1 [--device cpu] [--tiny]   environment, CUDA tests, NVlabs side by side, methods
#   scripts/gpu_check.sh part2 [--device cpu] [--tiny]   the paper configs' short fits and tests
#
# Results go to $OUT (the device tool's folder; ./gpu_check_out when unset), at most 8 files:
#   summary.md        environment, every part's table, status and seconds (written as the parts end)
#   methods.json      benchmarks/methods.py        (every method x precision x compile x channels_last)
#   nvlabs.json       benchmarks/sg2_vs_nvlabs.py  (ours / NVlabs at 128 px, fp32 and mixed)
#   configs.json      benchmarks/paper_configs.py  (each real-data config: fit + test, steps/s, projections)
#   logs/pytest.txt, logs/methods.log, logs/nvlabs.log, logs/configs.log
# Each part runs under `timeout` with its own budget (seconds; override with BUDGET_<PART>=...), and
# the Python parts also stop starting new work a little before it, so a slow part costs only itself.
# --device cpu --tiny: the same parts, tiny, on CPU (checks the script; its numbers mean nothing).
# PYTHON picks the interpreter (default python3: on the device, the one that holds PyTorch).
set -u

MODE=${1:-all}
shift || true
DEVICE=cuda
TINY=0
while [ $# -gt 0 ]; do
    case "$1" in
        --device) DEVICE=$2; shift 2 ;;
        --tiny) TINY=1; shift ;;
        *) echo "error: unknown option $1 (use --device cpu|cuda, --tiny)" >&2; exit 2 ;;
    esac
done

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT" || exit 2
PY=${PYTHON:-python3}
CARRY=.gpu_carry
SG2ADA_COMMIT=d72cc7d041b42ec8e806021a205ed9349f87c6a4
# The wheels the device image lacks (KINDS.md's package list): LightningCLI's jsonargparse[signatures],
# lmdb for LSUN, torch-fidelity for torchmetrics' FID classes.  Pinned as this project's venv has
# them; cp312: the device's Python.
WHEELS="jsonargparse==4.53.0 docstring_parser==0.18.0 typeshed_client==2.15.0 lmdb==3.0.0 torch-fidelity==0.4.0"

if [ "$MODE" = prepare ]; then
    set -e
    mkdir -p "$CARRY/whl"
    exclude=$(git rev-parse --git-path info/exclude)
    grep -qx "/$CARRY/" "$exclude" 2>/dev/null || echo "/$CARRY/" >> "$exclude"
    "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        -d "$CARRY/whl" $WHEELS
    # NVlabs' source, never part of the repository: exported from a git copy outside it.
    SG2ADA_GIT=${SG2ADA_GIT:-/work/.mirror/NVlabs+stylegan2-ada-pytorch/repo}
    if [ -d "$SG2ADA_GIT" ]; then
        rm -rf "$CARRY/sg2ada" && mkdir -p "$CARRY/sg2ada"
        git --git-dir="$SG2ADA_GIT" archive "$SG2ADA_COMMIT" dnnlib torch_utils training | tar -x -C "$CARRY/sg2ada"
    else
        echo "no NVlabs git copy at SG2ADA_GIT=$SG2ADA_GIT: the device run will time ours only" >&2
    fi
    du -sh "$CARRY"
    git status --porcelain --ignored "$CARRY" | head -3
    echo "prepared $CARRY: name it in the device call's carry list"
    exit 0
fi

case "$MODE" in all|part1|part2) ;; *) echo "error: mode must be prepare, all, part1 or part2" >&2; exit 2 ;; esac

OUT=${OUT:-$ROOT/gpu_check_out}
mkdir -p "$OUT/logs"
SUMMARY=$OUT/summary.md
export PYTHONUNBUFFERED=1 TORCH_EXTENSIONS_DIR=${TORCH_EXTENSIONS_DIR:-/tmp/torch_extensions}
export PYTHONPATH=$ROOT${PYTHONPATH:+:$PYTHONPATH}
if [ -d "$CARRY/whl" ] && ! "$PY" -c "import jsonargparse, docstring_parser, typeshed_client, lmdb, torch_fidelity" 2>/dev/null; then
    # Each wheel on its own: one that does not fit this Python (a binary one) skips only itself.
    for wheel in "$CARRY"/whl/*.whl; do
        "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
            --target /tmp/gpu_check_site "$wheel" 2>&1 | tail -n 2
    done
    export PYTHONPATH=$PYTHONPATH:/tmp/gpu_check_site
fi
[ -d "$CARRY/sg2ada/training" ] && export SG2ADA_DIR=${SG2ADA_DIR:-$ROOT/$CARRY/sg2ada}

T0=$(date +%s)
{
    echo "# gpu_check $MODE ($(date -u +%FT%TZ), device $DEVICE, tiny $TINY)"
    echo
    echo '```'
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1 | head -2
    "$PY" -c "import sys, torch, lightning; print('python', sys.version.split()[0], '| torch', torch.__version__, \
'| cuda', torch.version.cuda, '| lightning', lightning.__version__, '| gpu', \
torch.cuda.get_device_name(0) if torch.cuda.is_available() else None)" 2>&1 | tail -2
    echo "SG2ADA_DIR=${SG2ADA_DIR:-unset}; nvcc: $(command -v nvcc || echo none); ninja: $(command -v ninja || echo none)"
    echo '```'
} > "$SUMMARY"

# Preflight: the project must import with the device's packages, else every part would fail on its own.
if ! preflight=$(timeout 120 "$PY" -c "import train, benchmarks.methods, benchmarks.paper_configs" 2>&1); then
    printf '\n## Preflight: the project does not import, nothing else ran\n\n```\n%s\n```\n' \
        "$(echo "$preflight" | tail -n 15)" >> "$SUMMARY"
    echo "$preflight" | tail -n 15
    exit 3
fi

# part NAME BUDGET_S LOG CMD...: run CMD under timeout, log it, record status and seconds in the summary.
part() {
    local name=$1 budget=$2 log=$3
    shift 3
    local start=$(date +%s)
    echo "== $name (budget ${budget}s, at +$((start - T0))s)" | tee -a "$OUT/logs/$log"
    timeout --kill-after=10 "$budget" "$@" >> "$OUT/logs/$log" 2>&1
    local rc=$? took=$(( $(date +%s) - start ))
    local status=ok
    [ $rc -eq 124 ] || [ $rc -eq 137 ] && status="stopped at its ${budget}s budget"
    [ $rc -ne 0 ] && [ "$status" = ok ] && status="failed (rc $rc)"
    printf '\n## %s: %s, %ss\n\n' "$name" "$status" "$took" >> "$SUMMARY"
    echo "== $name: $status, ${took}s" | tee -a "$OUT/logs/$log"
}

if [ "$TINY" = 1 ]; then
    M_ARGS="--small --methods dcgan stylegan2-c --precisions 32-true bf16-mixed --compile off --channels-last off --steps 1 --warmup 1 --threads 1"
    N_ARGS="--small --configs a --modes fp32 --rounds 1 --warmup 1 --iters 1 --threads 1"
    C_ARGS="--small --configs noise_dim/cifar10_biggan.yaml i2i/facades.yaml --precisions 32-true --steps 2 --warmup 0 --count 16 --eval-samples 8 --num-workers 0"
    : "${BUDGET_PYTEST:=120}" "${BUDGET_NVLABS:=300}" "${BUDGET_METHODS:=300}" "${BUDGET_CONFIGS:=300}"  # slow CPUs
else
    M_ARGS="--steps 15 --warmup 3 --compile-warmup 17"
    N_ARGS="--configs c --modes fp32 mixed --rounds 2 --warmup 5 --iters 25"
    C_ARGS="--steps 20 --warmup 3 --count 256 --eval-samples 64 --num-workers 4"
fi
B_PYTEST=${BUDGET_PYTEST:-45}
B_NVLABS=${BUDGET_NVLABS:-180}
B_METHODS=${BUDGET_METHODS:-240}
if [ "$MODE" = all ]; then B_CONFIGS=${BUDGET_CONFIGS:-80}; else B_CONFIGS=${BUDGET_CONFIGS:-480}; fi

if [ "$MODE" != part2 ]; then
    part "CUDA tests of the noise budget (pytest tests/test_sampler_entropy.py -k cuda)" "$B_PYTEST" pytest.txt \
        "$PY" -m pytest tests/test_sampler_entropy.py -k cuda -q -rA -p no:cacheprovider
    tail -n 40 "$OUT/logs/pytest.txt" | sed 's/^/    /' >> "$SUMMARY"

    part "StyleGAN2 step: ours / NVlabs (benchmarks/sg2_vs_nvlabs.py $N_ARGS)" "$B_NVLABS" nvlabs.log \
        "$PY" benchmarks/sg2_vs_nvlabs.py --device "$DEVICE" $N_ARGS \
        --build-timeout $((B_NVLABS * 5 / 9)) --worker-timeout 60 --json "$OUT/nvlabs.json" --markdown "$OUT/nvlabs.md"
    [ -f "$OUT/nvlabs.md" ] && cat "$OUT/nvlabs.md" >> "$SUMMARY" && rm -f "$OUT/nvlabs.md"

    part "Every method's step (benchmarks/methods.py $M_ARGS)" "$B_METHODS" methods.log \
        "$PY" benchmarks/methods.py --device "$DEVICE" $M_ARGS --budget-s $((B_METHODS - 45)) \
        --json "$OUT/methods.json" --markdown "$OUT/methods.md"
    [ -f "$OUT/methods.md" ] && cat "$OUT/methods.md" >> "$SUMMARY" && rm -f "$OUT/methods.md"
fi

if [ "$MODE" != part1 ]; then
    part "Paper configs: short fit + test on synthetic data (benchmarks/paper_configs.py $C_ARGS)" "$B_CONFIGS" \
        configs.log "$PY" benchmarks/paper_configs.py --device "$DEVICE" $C_ARGS --budget-s $((B_CONFIGS - 30)) \
        --json "$OUT/configs.json" --markdown "$OUT/configs.md"
    [ -f "$OUT/configs.md" ] && cat "$OUT/configs.md" >> "$SUMMARY" && rm -f "$OUT/configs.md"
fi

printf '\nTotal: %ss\n' "$(( $(date +%s) - T0 ))" >> "$SUMMARY"
echo "gpu_check $MODE done in $(( $(date +%s) - T0 ))s; results in $OUT"
