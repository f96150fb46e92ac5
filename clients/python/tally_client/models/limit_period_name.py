from typing import Literal

LimitPeriodName = Literal["day", "month", "total"]

LIMIT_PERIOD_NAME_VALUES: set[LimitPeriodName] = {
    "day",
    "month",
    "total",
}


def check_limit_period_name(value: str) -> LimitPeriodName:
    if value in LIMIT_PERIOD_NAME_VALUES:
        return value
    raise TypeError(f"Unexpected value {value!r}. Expected one of {LIMIT_PERIOD_NAME_VALUES!r}")
