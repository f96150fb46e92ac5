from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from attrs import define as _attrs_define
from attrs import field as _attrs_field

if TYPE_CHECKING:
    from ..models.plan_terms import PlanTerms


T = TypeVar("T", bound="DataListPlanViewDataItem")


@_attrs_define
class DataListPlanViewDataItem:
    """
    Attributes:
        created_at (str):
        id (str):
        name (str):
        object_ (str): Always `plan`. Example: plan.
        terms (PlanTerms): The terms of one plan version. Stored as JSON; every field has a default so `{}` is
            the standard plan (list prices).
        version (int):
        version_created_at (str):
        version_id (str):
    """

    created_at: str
    id: str
    name: str
    object_: str
    terms: PlanTerms
    version: int
    version_created_at: str
    version_id: str
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        created_at = self.created_at

        id = self.id

        name = self.name

        object_ = self.object_

        terms = self.terms.to_dict()

        version = self.version

        version_created_at = self.version_created_at

        version_id = self.version_id

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "created_at": created_at,
                "id": id,
                "name": name,
                "object": object_,
                "terms": terms,
                "version": version,
                "version_created_at": version_created_at,
                "version_id": version_id,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.plan_terms import PlanTerms  # noqa: PLC0415

        d = dict(src_dict)
        created_at = d.pop("created_at")

        id = d.pop("id")

        name = d.pop("name")

        object_ = d.pop("object")

        terms = PlanTerms.from_dict(d.pop("terms"))

        version = d.pop("version")

        version_created_at = d.pop("version_created_at")

        version_id = d.pop("version_id")

        data_list_plan_view_data_item = cls(
            created_at=created_at,
            id=id,
            name=name,
            object_=object_,
            terms=terms,
            version=version,
            version_created_at=version_created_at,
            version_id=version_id,
        )

        data_list_plan_view_data_item.additional_properties = d
        return data_list_plan_view_data_item

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
