"""File watching, debouncing, incremental tailing and persisted checkpoints for the daemon."""
