from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from attrs import define as _attrs_define
from attrs import field as _attrs_field

T = TypeVar("T", bound="EstimateView")


@_attrs_define
class EstimateView:
    """
    Attributes:
        available (str):
        cost (str):
        fits (bool):
        object_ (str): Always `estimate`. Example: estimate.
    """

    available: str
    cost: str
    fits: bool
    object_: str
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        available = self.available

        cost = self.cost

        fits = self.fits

        object_ = self.object_

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "available": available,
                "cost": cost,
                "fits": fits,
                "object": object_,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        available = d.pop("available")

        cost = d.pop("cost")

        fits = d.pop("fits")

        object_ = d.pop("object")

        estimate_view = cls(
            available=available,
            cost=cost,
            fits=fits,
            object_=object_,
        )

        estimate_view.additional_properties = d
        return estimate_view

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
