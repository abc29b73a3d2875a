"""Schedules: validation, due times, the scheduler tick, and the sync of schedules declared
in code. Operator actions on schedules are services (``workers.services.schedules``)."""
