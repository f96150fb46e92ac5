from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

T = TypeVar("T", bound="AuthorizationView")


@_attrs_define
class AuthorizationView:
    """
    Attributes:
        amount (str):
        created_at (str):
        customer (str):
        expires_at (str):
        id (str):
        object_ (str): Always `authorization`. Example: authorization.
        status (str): `pending`, `captured`, `released` or `expired`.
        captured_amount (None | str | Unset):
        model (None | str | Unset):
    """

    amount: str
    created_at: str
    customer: str
    expires_at: str
    id: str
    object_: str
    status: str
    captured_amount: None | str | Unset = UNSET
    model: None | str | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        amount = self.amount

        created_at = self.created_at

        customer = self.customer

        expires_at = self.expires_at

        id = self.id

        object_ = self.object_

        status = self.status

        captured_amount: None | str | Unset
        if isinstance(self.captured_amount, Unset):
            captured_amount = UNSET
        else:
            captured_amount = self.captured_amount

        model: None | str | Unset
        if isinstance(self.model, Unset):
            model = UNSET
        else:
            model = self.model

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "amount": amount,
                "created_at": created_at,
                "customer": customer,
                "expires_at": expires_at,
                "id": id,
                "object": object_,
                "status": status,
            }
        )
        if captured_amount is not UNSET:
            field_dict["captured_amount"] = captured_amount
        if model is not UNSET:
            field_dict["model"] = model

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        amount = d.pop("amount")

        created_at = d.pop("created_at")

        customer = d.pop("customer")

        expires_at = d.pop("expires_at")

        id = d.pop("id")

        object_ = d.pop("object")

        status = d.pop("status")

        def _parse_captured_amount(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        captured_amount = _parse_captured_amount(d.pop("captured_amount", UNSET))

        def _parse_model(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        model = _parse_model(d.pop("model", UNSET))

        authorization_view = cls(
            amount=amount,
            created_at=created_at,
            customer=customer,
            expires_at=expires_at,
            id=id,
            object_=object_,
            status=status,
            captured_amount=captured_amount,
            model=model,
        )

        authorization_view.additional_properties = d
        return authorization_view

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
