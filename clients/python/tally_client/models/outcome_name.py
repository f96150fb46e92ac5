from typing import Literal

OutcomeName = Literal["cancelled", "failed", "succeeded"]

OUTCOME_NAME_VALUES: set[OutcomeName] = {
    "cancelled",
    "failed",
    "succeeded",
}


def check_outcome_name(value: str) -> OutcomeName:
    if value in OUTCOME_NAME_VALUES:
        return value
    raise TypeError(f"Unexpected value {value!r}. Expected one of {OUTCOME_NAME_VALUES!r}")
