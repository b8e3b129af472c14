#!/usr/bin/env bash
# Run the eagerbench suite on a GPU machine with no network.
#
#   scripts/gpu_suite.sh [WHEELS_DIR] [-- extra eagerbench run options]
#
# With WHEELS_DIR, a virtual environment .venv-gpu is created from those wheels alone
# (pip --no-index). Build that folder on a machine with network, for the GPU machine's Python:
#
#   pip download -d wheels 'torch==2.13.0' 'jax[cuda12]==0.10.2' click pandas matplotlib tqdm \
#       tabulate 'tensorflow[and-cuda]==2.21.0' setuptools wheel
#   pip wheel --no-deps -w wheels .            # eagerbench itself
#
# (add --python-version/--platform to pip download when the two machines differ). Without
# WHEELS_DIR the current python3 is used as it is (it must already hold the frameworks).
# Results go to results/gpu-<gpu name>/ with the GPU model, driver and clocks in env.json.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=python3
if [[ $# -gt 0 && "$1" != "--" ]]; then
    wheels=$1; shift
    python3 -m venv .venv-gpu
    .venv-gpu/bin/pip install --no-index --find-links "$wheels" click pandas matplotlib tqdm tabulate
    # Whichever frameworks the folder holds; a missing one only removes its modes.
    for pkg in torch 'jax[cuda12]' 'tensorflow[and-cuda]'; do
        .venv-gpu/bin/pip install --no-index --find-links "$wheels" "$pkg" || echo "skipped $pkg"
    done
    PY=.venv-gpu/bin/python
fi
[[ "${1:-}" == "--" ]] && shift

gpu=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1 | tr -c 'A-Za-z0-9\n' '-' \
      | sed 's/-\+/-/g; s/-$//')
out=${OUT_DIR:-results/gpu-${gpu:-unknown}}
# Frameworks installed here decide the modes; the iteration counts suit a fast device.
PYTHONPATH=. "$PY" -m eagerbench.cli run --device cuda --out "$out" --iters 30 --repeat 2 "$@"
