"""Page views through Redis: a visit is one increment; flushes move counts without losing any."""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connection
from django.db.models import Sum

from examples import services
from examples.faults import FAULTS_KEY, InjectedFault, fault_arm
from examples.models import Article, PageViewFlush
from tests.conftest import wait_for
from tests.examples.factories import ArticleFactory
from workers import enqueue
from workers.models import JobError, JobRecord, JobStatus


def _db_total() -> int:
    return Article.objects.aggregate(n=Sum("views"))["n"] or 0


def _article_with_visits(visits: int) -> Article:
    article = ArticleFactory()
    for _ in range(visits):
        services.article_view_record(article_id=article.pk)
    return article


def _visit_many(article_ids: list[int], visits: int, errors: list[BaseException]) -> None:
    try:
        for i in range(visits):
            services.article_view_record(article_id=article_ids[i % len(article_ids)])
    except BaseException as exc:  # surfaced by the test, not lost in the thread
        errors.append(exc)
    finally:
        connection.close()


@pytest.mark.slow
@pytest.mark.parametrize("simple", [False, True], ids=["forking", "simple"])
def test_20_writers_x_1000_visits_while_flushes_run_and_fail_lose_nothing(start_worker, redis_conn, simple):
    articles = [ArticleFactory().pk for _ in range(5)]
    # The first flushes that find visits fail: twice inside the database transaction, then
    # twice after its commit (before the Redis cleanup), while the writers keep writing.
    fault_arm(name="examples.pageviews.apply", times=2)
    fault_arm(name="examples.pageviews.cleanup", times=2)
    # On SQLite the forking worker also proves that no horse is forked while the worker's
    # recorder thread is inside a transaction (workers/forkguard.py).
    start_worker("high", simple=simple)
    ready = enqueue("examples.jobs.pageviews.page_views_flush", queue="high")
    wait_for(lambda: JobRecord.objects.filter(job_id=ready.id, status=JobStatus.FINISHED).exists(), timeout=60)
    errors: list[BaseException] = []
    writers = [threading.Thread(target=_visit_many, args=(articles, 1000, errors)) for _ in range(20)]
    for writer in writers:
        writer.start()
    flush_jobs = []
    while any(w.is_alive() for w in writers):
        flush_jobs.append(enqueue("examples.jobs.pageviews.page_views_flush", queue="high"))
        time.sleep(0.02)
    for writer in writers:
        writer.join()
    assert errors == []

    def settled() -> bool:
        if redis_conn.exists(services.PENDING_KEY, services.FLUSHING_KEY):
            enqueue("examples.jobs.pageviews.page_views_flush", queue="high")
            return False
        return True

    wait_for(settled, timeout=60, interval=0.3)

    assert _db_total() == 20_000
    assert redis_conn.hget(FAULTS_KEY, "examples.pageviews.apply:times") == b"0"
    assert redis_conn.hget(FAULTS_KEY, "examples.pageviews.cleanup:times") == b"0"
    injected = JobError.objects.filter(
        job__func="examples.jobs.pageviews.page_views_flush", exc_type__endswith="InjectedFault"
    )
    wait_for(lambda: injected.count() == 4, timeout=30)
    assert len(flush_jobs) > 4


def test_direct_mode_counts_every_visit_with_an_update(transactional_db, settings, redis_conn):
    settings.EXAMPLES = {**settings.EXAMPLES, "PAGE_VIEWS_MODE": "direct"}
    articles = [ArticleFactory().pk for _ in range(3)]
    errors: list[BaseException] = []
    writers = [threading.Thread(target=_visit_many, args=(articles, 50, errors)) for _ in range(20)]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join()

    assert errors == []
    assert _db_total() == 1000
    assert not redis_conn.exists(services.PENDING_KEY)


@pytest.mark.django_db
def test_a_visit_is_counted_in_redis_not_the_database_until_the_flush(client):
    article = ArticleFactory(title="Queues explained")
    url = f"/demo/articles/{article.pk}/"

    for _ in range(3):
        response = client.get(url)

    assert response.status_code == 200
    assert b"Queues explained" in response.content
    assert b"3 views" in response.content
    article.refresh_from_db()
    assert article.views == 0  # no database write per visit

    result = services.page_views_flush()

    assert (result.views, result.articles) == (3, 1)
    article.refresh_from_db()
    assert article.views == 3
    assert b"4 views" in client.get(url).content


@pytest.mark.django_db
def test_visiting_an_unknown_article_is_404_and_counts_nothing(client, redis_conn):
    assert client.get("/demo/articles/999999/").status_code == 404
    assert not redis_conn.exists(services.PENDING_KEY)


@pytest.mark.django_db
def test_flush_failing_inside_the_transaction_keeps_the_counts_for_the_next_flush():
    article = _article_with_visits(7)
    fault_arm(name="examples.pageviews.apply")

    with pytest.raises(InjectedFault):
        services.page_views_flush()
    article.refresh_from_db()
    assert article.views == 0
    services.article_view_record(article_id=article.pk)  # a visit arrives meanwhile

    result = services.page_views_flush()

    article.refresh_from_db()
    assert article.views == 8
    assert result.flushes == 2  # the leftover, then the new visit


@pytest.mark.django_db
def test_flush_dying_after_commit_is_not_applied_twice(redis_conn):
    article = _article_with_visits(5)
    fault_arm(name="examples.pageviews.cleanup")

    with pytest.raises(InjectedFault):
        services.page_views_flush()
    article.refresh_from_db()
    assert article.views == 5
    assert redis_conn.exists(services.FLUSHING_KEY)  # the cleanup was lost
    services.article_view_record(article_id=article.pk)

    result = services.page_views_flush()

    article.refresh_from_db()
    assert article.views == 6
    assert result.reapplied == 1
    assert not redis_conn.exists(services.FLUSHING_KEY, services.PENDING_KEY)
    assert PageViewFlush.objects.count() == 2


def test_flush_job_runs_on_a_worker_and_records_its_result(run_burst):
    article = _article_with_visits(4)
    job = enqueue("examples.jobs.pageviews.page_views_flush", queue="high")

    run_burst("high")

    record = JobRecord.objects.get(job_id=job.id)
    assert record.status == JobStatus.FINISHED
    assert record.result_repr.startswith("'4 views of 1 articles")
    article.refresh_from_db()
    assert article.views == 4
