from typing import Literal

ErrorType = Literal[
    "authentication",
    "conflict",
    "insufficient_credits",
    "internal",
    "invalid_request",
    "not_found",
    "permission",
    "rate_limited",
    "unavailable",
]

ERROR_TYPE_VALUES: set[ErrorType] = {
    "authentication",
    "conflict",
    "insufficient_credits",
    "internal",
    "invalid_request",
    "not_found",
    "permission",
    "rate_limited",
    "unavailable",
}


def check_error_type(value: str) -> ErrorType:
    if value in ERROR_TYPE_VALUES:
        return value
    raise TypeError(f"Unexpected value {value!r}. Expected one of {ERROR_TYPE_VALUES!r}")
