"""jobsite's RQ integration: the job and queue classes that report every transition,
RQ's scheduler as a worker runs it, the retry policy, per-queue pausing and captured logs.
The worker classes that run them live in ``workers.runtime.worker``."""
