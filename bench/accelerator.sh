#!/usr/bin/env bash
# jbatch's accelerator-sized runs, on the machine this runs on (a GPU or TPU host), into
# results/<device kind>/: the data-scaling study at GPU size (wider MLP, more seeds, larger
# batches, N up to 128,000), the large language-model sweep, and the full throughput grid,
# each JSON with its device metadata; then a comparison with the CPU runs committed here.
# Usage: bash bench/accelerator.sh [budget minutes per part, default 20]. Never run by CI.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH=${PYTHONPATH:-.}
minutes=${1:-20}
device=$(python -c "import jax; print(jax.devices()[0].device_kind.replace(' ', '-'))")
out="results/$device"
mkdir -p "$out"
echo "device: $device -> $out"
timeout "${minutes}m" python -m jbatch study data-scaling --accelerator --sizes 4000,16000,64000,128000 \
    --results-dir "$out/data-scaling" || echo "data-scaling: stopped after ${minutes} min (resumable)"
timeout "${minutes}m" python -m jbatch sweep --preset markov-large-transformer-adam --results-dir "$out" \
    || echo "language model: stopped after ${minutes} min (resumable)"
timeout "${minutes}m" python -m pytest bench --benchmark-only --full -q -p no:cacheprovider \
    --benchmark-json="$out/throughput.json" || echo "throughput: stopped or failed"
[ -f "$out/throughput.json" ] && python -m jbatch report --benchmark "$out/throughput.json" --out "$out/throughput"
[ -f "$out/throughput.json" ] && python -m jbatch compare results/throughput/benchmark.json "$out/throughput.json" \
    --out "$out/compare-throughput" || true
echo "done: $out"
