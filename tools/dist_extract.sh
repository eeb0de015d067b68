#!/usr/bin/env bash
# Feature extraction (or, with TOOL=build_prefix_cache, a frozen-prefix cache) in NUM_PROCS
# processes with torchrun:
#   bash tools/dist_extract.sh NUM_PROCS VIDEO_DIR OUT_DIR [ARGS of extract_features.py...]
#   TOOL=build_prefix_cache bash tools/dist_extract.sh NUM_PROCS CONFIG CACHE_DIR [ARGS...]
# Each process takes every NUM_PROCS-th video and text (gloo on CPU-only machines, NCCL on
# GPUs); the files are the same as one process writes, and a rerun skips finished ones.
set -euo pipefail
NPROCS=$1
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-127.0.0.1}
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PYTHONPATH="$ROOT:${PYTHONPATH:-}" exec python -m torch.distributed.run \
    --nnodes="$NNODES" --node_rank="$NODE_RANK" --master_addr="$MASTER_ADDR" \
    --nproc_per_node="$NPROCS" --master_port="$PORT" \
    "$ROOT/tools/${TOOL:-extract_features}.py" "${@:2}" --launcher pytorch
