from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

T = TypeVar("T", bound="ListCustomerViewDataItem")


@_attrs_define
class ListCustomerViewDataItem:
    """
    Attributes:
        balance (str): Available balance. Example: 12.500000000.
        created_at (str):
        external_id (str):
        id (str):
        object_ (str): Always `customer`. Example: customer.
        plan (str):
        status (str): `active`, `low`, `depleted` or `suspended`.
        email (None | str | Unset):
        name (None | str | Unset):
    """

    balance: str
    created_at: str
    external_id: str
    id: str
    object_: str
    plan: str
    status: str
    email: None | str | Unset = UNSET
    name: None | str | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        balance = self.balance

        created_at = self.created_at

        external_id = self.external_id

        id = self.id

        object_ = self.object_

        plan = self.plan

        status = self.status

        email: None | str | Unset
        if isinstance(self.email, Unset):
            email = UNSET
        else:
            email = self.email

        name: None | str | Unset
        if isinstance(self.name, Unset):
            name = UNSET
        else:
            name = self.name

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "balance": balance,
                "created_at": created_at,
                "external_id": external_id,
                "id": id,
                "object": object_,
                "plan": plan,
                "status": status,
            }
        )
        if email is not UNSET:
            field_dict["email"] = email
        if name is not UNSET:
            field_dict["name"] = name

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        balance = d.pop("balance")

        created_at = d.pop("created_at")

        external_id = d.pop("external_id")

        id = d.pop("id")

        object_ = d.pop("object")

        plan = d.pop("plan")

        status = d.pop("status")

        def _parse_email(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        email = _parse_email(d.pop("email", UNSET))

        def _parse_name(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        name = _parse_name(d.pop("name", UNSET))

        list_customer_view_data_item = cls(
            balance=balance,
            created_at=created_at,
            external_id=external_id,
            id=id,
            object_=object_,
            plan=plan,
            status=status,
            email=email,
            name=name,
        )

        list_customer_view_data_item.additional_properties = d
        return list_customer_view_data_item

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
