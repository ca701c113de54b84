#!/usr/bin/env bash
# On a machine with network, before the check:  bash scripts/gpu_check_prepare.sh [folder]   (default .gpu_check, ignored)
# Puts into one folder what a GPU machine without network may lack and cannot download: the wheels of
# hydra-core and omegaconf as pyproject.toml pins them, and of antlr4-python3-runtime 4.9.3, omegaconf's parser
# runtime, which the index has only as source (pip builds a wheel of it: it is pure Python); and MNIST's four files,
# gzipped (about 11 MB, where the raw files are 55 MB). Copy the folder beside the checkout there.
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
