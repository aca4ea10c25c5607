#!/bin/bash
# One shard of a sharded `deepsight evaluate` per task of a Slurm job array.
#
# Submit through submit.sh (it sets the array to 0-(N-1), passes SHARDS=N and queues the merge
# after it), or by hand:
#   DATA=/data/imagenet-val OUT=/shared/eval/run-1 \
#     sbatch --array=0-9 --export=ALL,SHARDS=10 evaluate-array.sh --methods gradcam,saliency
# Arguments after the script are passed to `deepsight evaluate`. Task i writes $OUT/shard-i-of-N;
# a task that is killed, preempted or requeued resumes from its records when it runs again.
# Re-run failed indices only with the same SHARDS: sbatch --array=3,7 --export=ALL,SHARDS=10 ...
#
#SBATCH --job-name=deepsight-eval
#SBATCH --array=0-9
#SBATCH --cpus-per-task=2
#SBATCH --mem=2G
#SBATCH --time=12:00:00
#SBATCH --requeue
#SBATCH --output=deepsight-eval-%A_%a.out
set -euo pipefail
: "${DATA:?set DATA to the dataset folder (dataset.txt) or list file}"
: "${OUT:?set OUT to the output folder on the shared file system}"
# N must be the same for every task, also when failed indices are resubmitted alone: it is not
# taken from SLURM_ARRAY_TASK_COUNT, which counts only the tasks of that submission.
: "${SHARDS:?set SHARDS to the shard count N (the array is 0-(N-1))}"
: "${SLURM_ARRAY_TASK_ID:?run this as an array job (sbatch --array=0-$((SHARDS - 1)))}"
exec "${DEEPSIGHT:-deepsight}" evaluate --data "$DATA" --out "$OUT" --shards "$SHARDS" "$@"
