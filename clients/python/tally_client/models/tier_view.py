from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from attrs import define as _attrs_define
from attrs import field as _attrs_field

T = TypeVar("T", bound="TierView")


@_attrs_define
class TierView:
    """The volume tier an event was priced in.

    Attributes:
        discount_percent (str):  Example: 10.00.
        from_tokens (int):
    """

    discount_percent: str
    from_tokens: int
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        discount_percent = self.discount_percent

        from_tokens = self.from_tokens

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
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

        tier_view = cls(
            discount_percent=discount_percent,
            from_tokens=from_tokens,
        )

        tier_view.additional_properties = d
        return tier_view

    @property
    def additional_keys(self) -> list[str]:
        return list(self.additional_properties.keys())

    def __getitem__(self, key: str) -> Any:
        return self.additional_properties[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self.additional_properties[key] = value

    def __delitem__(self, key: str) -> None:
        del self.additional_properties[key]

    def __contains__(self, key: str) -> bool:
        return key in self.additional_properties
