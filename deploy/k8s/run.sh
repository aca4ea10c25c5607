#!/bin/bash
# Runs the sharded evaluation, waits for it, then the merge (kubectl's current context and
# namespace). The volumes of volumes.yaml must exist and hold the data.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
kubectl apply -f "$here/evaluate-job.yaml"
while :; do
  state=$(kubectl get job deepsight-evaluate \
    -o jsonpath='{range .status.conditions[?(@.status=="True")]}{.type} {end}')
  case "$state" in
    *Complete*) break ;;
    *Failed*)
      echo "deepsight-evaluate failed (an index ran out of retries): kubectl logs -l app=deepsight-evaluate;" \
        "fix it, delete the Job and apply it again: finished shards are reused, stopped ones resume" >&2
      exit 1
      ;;
  esac
  sleep 30
done
kubectl delete job deepsight-merge --ignore-not-found
kubectl apply -f "$here/merge-job.yaml"
kubectl wait --for=condition=complete job/deepsight-merge --timeout=2h
kubectl logs job/deepsight-merge | tail -n 20
