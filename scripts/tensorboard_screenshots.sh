#!/usr/bin/env bash
# Screenshots of what TensorBoard shows for a run or a sweep, taken by headless Chromium against the real server:
#   scripts/tensorboard_screenshots.sh <run or sweep folder> [out folder]     (needs chromium: apt-get install chromium)
# Writes <out>/time_series.png, custom_scalars.png, hparams.png and images.png (default out: <folder>/screenshots).
set -euo pipefail
folder=${1:?usage: scripts/tensorboard_screenshots.sh <run or sweep folder> [out folder]}
out=${2:-$folder/screenshots}
python=${PYTHON:-python}
browser=$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)
[ -n "$browser" ] || { echo "error: no chromium on PATH; apt-get install chromium" >&2; exit 2; }
mkdir -p "$out"
port=$("$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$python" -m tensorboard.main --logdir "$folder" --host 127.0.0.1 --port "$port" >"$out/tensorboard.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
for _ in $(seq 1 120); do  # until the server answers and has read the runs
  if "$python" -c "import urllib.request, sys; sys.exit(b'\"' not in urllib.request.urlopen('http://127.0.0.1:$port/data/runs').read())" 2>/dev/null; then
    break
  fi
  sleep 0.5
done
# forceSVG: TensorBoard draws its charts with WebGL, which headless Chromium lacks; SVG draws the same lines.
for page in custom_scalars hparams images time_series; do  # time series last: its charts wait for loaded data
  fragment=${page/time_series/timeseries}
  "$browser" --headless --no-sandbox --hide-scrollbars --window-size=1400,1000 \
    --virtual-time-budget=30000 --screenshot="$out/$page.png" "http://127.0.0.1:$port/?forceSVG=true#$fragment" >/dev/null 2>&1
  echo "$out/$page.png"
done
