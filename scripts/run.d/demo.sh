# Sourced by scripts/run.sh: realistic demo traffic (jobs, page views, campaigns, ETL rows).
start $PY manage.py demo_traffic
