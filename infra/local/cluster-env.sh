# shellcheck shell=bash disable=SC2034  # used by the scripts that source this
# The loopback port layout of `make cluster-faults`' clusters, shared by
# cluster-rabbitmq.sh, cluster-minio.sh and tests/cluster (which mirrors it).
# Everything is offset from BUCKETFN_CLUSTER_PORT_BASE (B, default 30000):
#   RabbitMQ node N (1..3): AMQP B+10+N, management B+20+N, distribution B+30+N; epmd B+40
#   MinIO server N (1..4): S3 B+100+N, console B+110+N
#   runtime N (tests/cluster): metrics B+200+N
CLUSTER_BASE="${BUCKETFN_CLUSTER_PORT_BASE:-30000}"
CLUSTER_DIR="$STATE/cluster"

cluster_amqp_port() { echo $((CLUSTER_BASE + 10 + $1)); }
cluster_minio_port() { echo $((CLUSTER_BASE + 100 + $1)); }
