#!/bin/sh
# Create the process work pool and its queues, as `make up` does natively. Safe to re-run.
# usage: work-pool.sh POOL QUEUE...
set -eu
pool=$1
shift
prefect work-pool inspect "$pool" >/dev/null 2>&1 \
  || prefect work-pool create "$pool" --type process
for queue in "$@"; do
  prefect work-queue inspect "$queue" --pool "$pool" >/dev/null 2>&1 \
    || prefect work-queue create "$queue" --pool "$pool"
done
echo "work pool $pool ready with queues: $*"
