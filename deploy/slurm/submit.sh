#!/bin/bash
# Queues a sharded evaluation and its merge:
#   DATA=/data/imagenet-val OUT=/shared/eval/run-1 deploy/slurm/submit.sh 10 --methods gradcam
# N array tasks (0..N-1) run `deepsight evaluate --shards N`; the merge job waits for all of
# them to succeed (afterok). If a task fails for good, the merge never starts: re-run that index
# (sbatch --array=I --export=ALL,SHARDS=N evaluate-array.sh ...), then sbatch merge.sh.
# DEEPSIGHT (default: deepsight on PATH) names the binary; extra sbatch options: SBATCH_ARGS.
set -euo pipefail
n=${1:?usage: submit.sh N [deepsight evaluate arguments...]}
shift
: "${DATA:?set DATA}" "${OUT:?set OUT}"
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck disable=SC2086
array=$(sbatch --parsable ${SBATCH_ARGS:-} --array="0-$((n - 1))" --export="ALL,SHARDS=$n" \
  "$here/evaluate-array.sh" "$@")
array=${array%%;*}
# shellcheck disable=SC2086
merge=$(sbatch --parsable ${SBATCH_ARGS:-} --dependency="afterok:$array" --export=ALL "$here/merge.sh")
merge=${merge%%;*}
echo "array job $array: $n shards into $OUT; merge job $merge after it into ${MERGED:-$OUT/merged}"
