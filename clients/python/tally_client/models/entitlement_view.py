from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from attrs import define as _attrs_define
from attrs import field as _attrs_field

T = TypeVar("T", bound="EntitlementView")


@_attrs_define
class EntitlementView:
    """
    Attributes:
        available (str):
        entitled (bool):
        object_ (str): Always `entitlement`. Example: entitlement.
        reason (str): `ok`, `insufficient_credits`, `suspended` or `cap_reached`.
    """

    available: str
    entitled: bool
    object_: str
    reason: str
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        available = self.available

        entitled = self.entitled

        object_ = self.object_

        reason = self.reason

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "available": available,
                "entitled": entitled,
                "object": object_,
                "reason": reason,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        available = d.pop("available")

        entitled = d.pop("entitled")

        object_ = d.pop("object")

        reason = d.pop("reason")

        entitlement_view = cls(
            available=available,
            entitled=entitled,
            object_=object_,
            reason=reason,
        )

        entitlement_view.additional_properties = d
        return entitlement_view

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
