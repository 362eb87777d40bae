import logging

from celery import shared_task

from inbox.items import purge_expired

log = logging.getLogger(__name__)


@shared_task
def purge_expired_inbox_items() -> int:
    """Delete inbox items past HERALD_INBOX_RETENTION_DAYS (the per-inbox cap is kept on insert)."""
    deleted = purge_expired()
    if deleted:
        log.info("purged %d expired inbox items", deleted)
    return deleted
