"""A jobsite worker at run time: the worker classes, their companion thread (liveness,
recorder, watchdogs), liveness keys, and the watchdogs that find crashed work."""
