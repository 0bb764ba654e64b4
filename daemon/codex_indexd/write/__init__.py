"""The only code that opens Codex's files for writing, following Codex's own lock protocols."""
