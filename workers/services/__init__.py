"""Writes and operator actions: jobs (retry, cancel, discard, run again, bulk), queues
(pause, resume), schedules (pause, resume, run now), retention (pruning) and counts (the
job status counts rebuilt from the records)."""
