"""Our own files: directories, per-home file names, and the records we keep there."""
