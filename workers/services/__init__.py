"""Writes and operator actions: jobs (retry, cancel, discard, run again, bulk), queues
(pause, resume), schedules (pause, resume, run now) and retention (pruning)."""
