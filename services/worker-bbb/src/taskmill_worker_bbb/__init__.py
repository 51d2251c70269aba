"""Worker of service `bbb`: aggregates the sample orders of its MySQL source."""
