"""The prefork pool of a run worker, replacing its one-task pool process at once.

A run worker's pool process lives for one task (CELERY_WORKER_MAX_TASKS_PER_CHILD = 1). Celery's pool
forks the next one when it sees the last one exit, and otherwise on a timer every 5 s; when it missed
the exit, the next queued run waited for that timer: 1 to 5 s between a free worker and its next run
(bench/admission.py measured 1.2 to 5.1 s in a third of its pairs). This pool looks every POOL_CHECK_S.
"""

from celery.concurrency import asynpool, prefork

POOL_CHECK_S = 0.25


class AsynPool(asynpool.AsynPool):
    @property
    def timers(self):
        return {self.maintain_pool: POOL_CHECK_S}


class TaskPool(prefork.TaskPool):
    Pool = AsynPool
