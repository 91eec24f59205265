"""What runs once before any worker starts: every database checked and its schema made.

The one place that prepares both the checkpoint storage and the booking store, so
that neither package needs to know about the other.
"""

from __future__ import annotations

from service.bookings.store import open_booking_store
from service.settings import Settings
from service.storage import prepare_checkpoint_storage


def prepare_storage(settings: Settings) -> None:
    """Run in the Gunicorn master before forking (and by `init-db`).

    Opens and closes its own connections, so no connection crosses the fork.
    """
    prepare_checkpoint_storage(settings)
    store = open_booking_store(settings)
    try:
        store.init_schema()
    finally:
        store.close()
