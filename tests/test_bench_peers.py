"""`make bench-peers`'s driver: its arguments, and the targets it computes from the rates.

The runs themselves need the peers' venvs and take most of an hour: `make bench-peers`."""

from __future__ import annotations

import pytest

from bench.peers import run


@pytest.mark.parametrize(
    ("argv", "complaint"),
    [
        (["no-such-row"], "unknown rows: no-such-row"),
        (["--scale", "0"], "0 < --scale <= 10"),
        (["--scale", "abc"], "invalid float value: 'abc'"),
        (["--reps", "0"], "--reps >= 1"),
    ],
)
def test_bad_arguments_are_refused_before_anything_runs(argv, complaint, capsys, monkeypatch):
    monkeypatch.delenv("REDIS_URL", raising=False)  # nothing is reached for: it stops first
    with pytest.raises(SystemExit) as stopped:
        run.main(argv)
    assert stopped.value.code == 2
    assert complaint in capsys.readouterr().err


def test_a_good_row_list_is_taken():
    rows = run.ROWS
    assert {r.key for r in rows} >= {"rq-simple", "jobsite-simple", "celery-solo", "procrastinate", "django-tasks"}
    assert len({r.key for r in rows}) == len(rows)  # a key names one database


def _rates(**per_row: float) -> dict[tuple[str, str], float]:
    return {(key.replace("_", "-"), workload): rate for key, rate in per_row.items() for workload in run.WORKLOADS}


def test_targets_compare_jobsite_with_bare_rq_and_the_fastest_peer():
    rates = _rates(rq_simple=100, rq_forking=30, jobsite_simple=95, jobsite_forking=60, django_q2=150,
                   procrastinate=170, celery_prefork=40)  # fmt: skip
    runs = {key: [rate] for key, rate in rates.items()}
    results = {r["name"].split(": ", 1)[1]: r for r in run._results(rates, runs) if r["name"].startswith("peers no-op")}

    simple = results["jobsite SimpleWorker / bare RQ SimpleWorker"]
    assert (simple["ratio"], simple["meets"]) == (0.95, True)
    forking = next(r for name, r in results.items() if name.startswith("jobsite forking Worker"))
    assert (forking["ratio"], forking["meets"]) == (2.0, False)
    # Bare RQ is no peer (it keeps no history); the fastest peer here is procrastinate.
    peer = results["jobsite's best isolating worker / the fastest peer (procrastinate)"]
    assert (peer["ratio"], peer["meets"]) == (round(60 / 170, 3), False)
    assert peer["jobs_per_s"]["django-q2"] == 150


def test_a_row_not_measured_gives_no_ratio_rather_than_a_wrong_one():
    rates = _rates(rq_simple=100, procrastinate=170)
    results = run._results(rates, {})
    simple = next(r for r in results if r["name"] == "peers no-op: jobsite SimpleWorker / bare RQ SimpleWorker")
    assert (simple["ratio"], simple["meets"]) == (None, None)
    table = run._markdown(rates, [r for r in run.ROWS if r.key in ("rq-simple", "jobsite-simple")])
    assert "| **jobsite TrackingSimpleWorker (`rqworker --simple`)** | - | - | - | - |" in table
