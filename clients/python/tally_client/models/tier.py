from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from attrs import define as _attrs_define

T = TypeVar("T", bound="Tier")


@_attrs_define
class Tier:
    """A graduated tier: from `from_tokens` used in the billing period on, events are priced
    with `discount_percent` off. The tier is the one the period's usage is in when the event
    arrives, so it is known at every event.

        Attributes:
            discount_percent (str): At most 100, up to two decimals.
            from_tokens (int):
    """

    discount_percent: str
    from_tokens: int

    def to_dict(self) -> dict[str, Any]:
        discount_percent = self.discount_percent

        from_tokens = self.from_tokens

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "discount_percent": discount_percent,
                "from_tokens": from_tokens,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        discount_percent = d.pop("discount_percent")

        from_tokens = d.pop("from_tokens")

        tier = cls(
            discount_percent=discount_percent,
            from_tokens=from_tokens,
        )

        return tier
