#!/bin/bash
# Merges the shards in $OUT into $MERGED (default $OUT/merged): the tables, plots and
# results.json of one unsharded run. Refuses, naming them, missing or unfinished shards.
#SBATCH --job-name=deepsight-merge
#SBATCH --cpus-per-task=1
#SBATCH --mem=2G
#SBATCH --time=01:00:00
#SBATCH --output=deepsight-merge-%j.out
set -euo pipefail
: "${OUT:?set OUT to the folder holding the shard-I-of-N folders}"
exec "${DEEPSIGHT:-deepsight}" evaluate --merge "$OUT" --out "${MERGED:-$OUT/merged}"
