from typing import Literal

FailedRequestPolicy = Literal["charge_all", "charge_input", "charge_nothing"]

FAILED_REQUEST_POLICY_VALUES: set[FailedRequestPolicy] = {
    "charge_all",
    "charge_input",
    "charge_nothing",
}


def check_failed_request_policy(value: str) -> FailedRequestPolicy:
    if value in FAILED_REQUEST_POLICY_VALUES:
        return value
    raise TypeError(f"Unexpected value {value!r}. Expected one of {FAILED_REQUEST_POLICY_VALUES!r}")
