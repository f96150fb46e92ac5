from typing import Literal

EventTypeName = Literal[
    "*",
    "auto_topup.failed",
    "balance.depleted",
    "balance.low",
    "balance.recovered",
    "budget.reached",
    "invoice.paid",
    "key.limit_reached",
    "spend.spike",
    "subscription.canceled",
    "subscription.past_due",
    "topup.failed",
    "topup.succeeded",
    "usage.cap_reached",
]

EVENT_TYPE_NAME_VALUES: set[EventTypeName] = {
    "*",
    "auto_topup.failed",
    "balance.depleted",
    "balance.low",
    "balance.recovered",
    "budget.reached",
    "invoice.paid",
    "key.limit_reached",
    "spend.spike",
    "subscription.canceled",
    "subscription.past_due",
    "topup.failed",
    "topup.succeeded",
    "usage.cap_reached",
}


def check_event_type_name(value: str) -> EventTypeName:
    if value in EVENT_TYPE_NAME_VALUES:
        return value
    raise TypeError(f"Unexpected value {value!r}. Expected one of {EVENT_TYPE_NAME_VALUES!r}")
