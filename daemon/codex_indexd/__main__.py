from codex_indexd.cli import entry_point

entry_point()
