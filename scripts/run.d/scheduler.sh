# Sourced by scripts/run.sh: the scheduler that fires schedules (see README, "Schedules").
start scheduler $PY manage.py run_scheduler
