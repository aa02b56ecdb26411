"""``make cluster-faults``: runtimes, RabbitMQ and MinIO clustered, each killed mid-load."""
