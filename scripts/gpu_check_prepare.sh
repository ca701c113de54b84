#!/usr/bin/env bash
# Here, before a GPU call:  bash scripts/gpu_check_prepare.sh [folder]   (default .gpu_check, ignored by git)
# Puts into one folder what the lent GPU machine lacks and cannot download (it has no network): the wheels of
# hydra-core and omegaconf as pyproject.toml pins them, and of antlr4-python3-runtime 4.9.3, omegaconf's parser
# runtime, which the index has only as source (pip builds a wheel of it: it is pure Python); and MNIST's four files,
# gzipped (about 11 MB, where the raw files are 55 MB). The GPU call carries the folder: run(carry=[".gpu_check"]).
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python}
folder=${1:-.gpu_check}
rm -rf "$folder"
mkdir -p "$folder/wheels" "$folder/mnist"
pinned() { grep -o "\"$1==[^\"]*\"" pyproject.toml | tr -d '"'; }
"$python" -m pip download -q --no-deps --only-binary=:all: --dest "$folder/wheels" "$(pinned hydra-core)" "$(pinned omegaconf)"
"$python" -m pip wheel -q --no-deps --wheel-dir "$folder/wheels" antlr4-python3-runtime==4.9.3
"$python" -c "from src.data.mnist import MNISTDataModule; MNISTDataModule().prepare_data()"  # fetched and verified
for raw in data/MNIST/raw/*-ubyte; do
  gzip -c "$raw" >"$folder/mnist/$(basename "$raw").gz"
done
du -sh "$folder"
