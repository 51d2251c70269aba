"""The Taskmill HTTP api: validates, authenticates and writes tasks to MongoDB."""
