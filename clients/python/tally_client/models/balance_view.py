from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from attrs import define as _attrs_define
from attrs import field as _attrs_field

T = TypeVar("T", bound="BalanceView")


@_attrs_define
class BalanceView:
    """
    Attributes:
        available (str):  Example: 12.500000000.
        currency (str):
        held (str):  Example: 0.060000000.
        low_balance_threshold (str):  Example: 1.000000000.
        object_ (str): Always `balance`. Example: balance.
        status (str):
    """

    available: str
    currency: str
    held: str
    low_balance_threshold: str
    object_: str
    status: str
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        available = self.available

        currency = self.currency

        held = self.held

        low_balance_threshold = self.low_balance_threshold

        object_ = self.object_

        status = self.status

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "available": available,
                "currency": currency,
                "held": held,
                "low_balance_threshold": low_balance_threshold,
                "object": object_,
                "status": status,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        available = d.pop("available")

        currency = d.pop("currency")

        held = d.pop("held")

        low_balance_threshold = d.pop("low_balance_threshold")

        object_ = d.pop("object")

        status = d.pop("status")

        balance_view = cls(
            available=available,
            currency=currency,
            held=held,
            low_balance_threshold=low_balance_threshold,
            object_=object_,
            status=status,
        )

        balance_view.additional_properties = d
        return balance_view

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
