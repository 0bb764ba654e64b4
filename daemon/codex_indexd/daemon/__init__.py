"""The daemon: its loop over every home, its watches, and what it tells the service manager."""
