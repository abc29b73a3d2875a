# Sourced by scripts/run.sh: realistic demo traffic (jobs, page views, campaigns, ETL rows).
start demo $PY manage.py demo_traffic
