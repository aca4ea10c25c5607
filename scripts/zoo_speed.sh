#!/usr/bin/env bash
# Wall time of `deepsight classify` on each exported zoo model (scripts/make_torchvision_zoo.py),
# two binaries interleaved in alternating order (a process started second runs faster: the model
# file is in the page cache), median of 6 runs each: ./scripts/zoo_speed.sh ZOO_DIR OLD_BIN NEW_BIN
set -euo pipefail
zoo=$1 old=$2 new=$3
image=$(dirname "$0")/../samples/$(ls "$(dirname "$0")/../samples" | grep -m1 -E '\.(jpg|png)$')
median() { sort -n | sed -n 3,4p | awk '{s += $1} END {print s / 2}'; }
echo "| model | before s | after s | after / before |"
echo "|---|---|---|---|"
for m in "$zoo"/*.onnx; do
  name=$(basename "$m" .onnx)
  size=$(python3 -c "import json;print(json.load(open('$zoo/$name.json'))['shape'][2])")
  declare -a a=() b=()
  for order in "old new" "new old" "old new" "new old" "old new" "new old"; do
    for bin in $order; do
      exe=${!bin}
      t0=$(date +%s.%N)
      if "$exe" classify "$image" --model "$m" --preprocess torchvision --input-size "${size}x${size}" >/dev/null 2>&1; then
        t=$(echo "$(date +%s.%N) - $t0" | bc)
      else
        t=refused
      fi
      if [ "$bin" = old ]; then a+=("$t"); else b+=("$t"); fi
    done
  done
  ma=$(printf '%s\n' "${a[@]}" | median); mb=$(printf '%s\n' "${b[@]}" | median)
  if [ "${a[0]}" = refused ] || [ "${b[0]}" = refused ]; then
    echo "| $name | ${a[0]} | ${b[0]} | - |"
  else
    printf '| %s | %.3f | %.3f | %.2f |\n' "$name" "$ma" "$mb" "$(echo "scale=3; $mb / $ma" | bc)"
  fi
done
