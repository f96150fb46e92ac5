from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from attrs import define as _attrs_define

from ..types import UNSET, Unset

T = TypeVar("T", bound="Advance")


@_attrs_define
class Advance:
    """
    Attributes:
        fail (bool | Unset):
    """

    fail: bool | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        fail = self.fail

        field_dict: dict[str, Any] = {}

        field_dict.update({})
        if fail is not UNSET:
            field_dict["fail"] = fail

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        fail = d.pop("fail", UNSET)

        advance = cls(
            fail=fail,
        )

        return advance
