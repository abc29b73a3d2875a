"""Side-by-side benchmarks: `make bench` (scripts/bench.sh) runs ``python -m bench.run``."""
