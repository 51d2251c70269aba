"""Taskmill's common package: what the api, the dispatcher and the workers share.

Modules: `schema` (statuses, transitions, ids), `config` (the YAML of the spec),
`errors`, `store` (the MongoDB task store), `codec` (the Kafka message),
`kafka` (client settings), `client` (HTTP client of the api), `worker` (the SDK).
"""
