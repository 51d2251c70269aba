"""The Taskmill dispatcher: relays started tasks from MongoDB to Kafka (outbox)."""
