#!/usr/bin/env bash
# On a GPU machine, from the repository root:  bash scripts/gpu_check.sh [--tiny] [--out DIR] ...
# Installs what that machine lacks from .gpu_check/ (made here by scripts/gpu_check_prepare.sh: the wheels of
# hydra-core, omegaconf and antlr4, and MNIST gzipped), offline, into a folder of its own; then runs
# scripts/gpu_check.py with the machine's own torch and lightning. PYTHON picks the interpreter (default python3).
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
carried=.gpu_check
if ! "$python" -c "import hydra, omegaconf" 2>/dev/null; then
  site=${TMPDIR:-/tmp}/gpu_check_site
  "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" "$carried"/wheels/*.whl
  export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
fi
raw=data/MNIST/raw  # where the DataModule looks first; it still verifies every file's sha256 before use
mkdir -p "$raw"
for packed in "$carried"/mnist/*.gz; do
  [ -e "$packed" ] || continue
  name=$(basename "$packed" .gz)
  [ -f "$raw/$name" ] || gunzip -c "$packed" >"$raw/$name"
done
exec "$python" scripts/gpu_check.py "$@"
