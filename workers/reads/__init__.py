"""Reads for the dashboard, the admin, /metrics and the alerts: job records (``jobs``),
dead-letter groups, live RQ facts (``live``), roll-ups (``rollups``), per-queue figures
(``queues``) and schedules."""
