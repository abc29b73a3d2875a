"""One step of a peer's run, in that peer's venv: ``python -m bench.peers.client PEER
setup`` (its tables) or ``... PEER enqueue WORKLOAD COUNT`` (the jobs, before its worker
starts; not timed). PEER is also in ``BENCH_PEER`` for ``settings`` and ``apps``."""

from __future__ import annotations

import os
import subprocess
import sys

from .tasks import WORKLOADS

RQ_QUEUE = "bench"  # bare RQ's queue; jobsite's workers take a configured queue, "default"


def setup(peer: str) -> None:
    if peer == "procrastinate":
        from .apps import procrastinate

        with procrastinate.open():
            procrastinate.schema_manager.apply_schema()
    elif peer.startswith(("celery", "django-q2", "django-tasks")):
        subprocess.run([sys.executable, "-m", "django", "migrate", "-v", "0"], check=True)
    elif peer.startswith("jobsite"):
        subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], check=True)


def enqueue(peer: str, workload: str, count: int) -> None:
    path = f"bench.peers.tasks.{workload}"
    if peer.startswith("rq"):
        from redis import Redis
        from rq import Queue

        queue = Queue(RQ_QUEUE, connection=Redis.from_url(os.environ["REDIS_URL"]))
        for start in range(0, count, 500):
            queue.enqueue_many([Queue.prepare_data(path) for _ in range(min(500, count - start))])
    elif peer.startswith("jobsite"):
        import django

        django.setup()
        from workers import enqueue as jobsite_enqueue
        from workers.recording.consumer import drain

        for _ in range(count):
            jobsite_enqueue(path, queue="default", max_attempts=1)  # retries off
        # The enqueue events applied, as a running recorder would have long before a job
        # runs: left in the stream, the worker's recorder would apply them in its time.
        drain()
    elif peer == "django-q2":
        import django

        django.setup()
        from django_q.tasks import async_task

        for _ in range(count):
            async_task(path)
    elif peer == "procrastinate":
        from .apps import TASKS, procrastinate

        with procrastinate.open():
            TASKS[workload].batch_defer(*({} for _ in range(count)))
    else:  # celery-*, django-tasks
        from .apps import TASKS

        task = TASKS[workload]
        for _ in range(count):
            (task.delay if peer.startswith("celery") else task.enqueue)()


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[1] == "setup":
        setup(argv[0])
        return 0
    if len(argv) == 4 and argv[1] == "enqueue" and argv[2] in WORKLOADS and argv[3].isdigit():
        enqueue(argv[0], argv[2], int(argv[3]))
        return 0
    print(f"usage: client PEER setup | client PEER enqueue {{{','.join(WORKLOADS)}}} COUNT", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
