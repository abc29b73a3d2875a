"""Ordered (keyed) jobs and concurrency limits (``keys``), and the stuck-key watchdog."""
