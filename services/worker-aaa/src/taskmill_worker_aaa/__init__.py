"""Worker of service `aaa`: searches the `users` collection of its MongoDB source."""
