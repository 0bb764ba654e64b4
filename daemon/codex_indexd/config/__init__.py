"""Our configuration: the settings, their sources and their checks."""
