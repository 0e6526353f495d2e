"""The split deployment's wire: NATS JetStream subjects, streams and the job document."""
