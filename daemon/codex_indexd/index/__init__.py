"""The pure index model: facts in, desired entries and drift out. No I/O here."""
