"""One handler that does nothing (ORDERHOOKS_HANDLERS for the drain run)."""

from workers.handlers import on


@on("orders/create")
def noop(event) -> None:
    pass
