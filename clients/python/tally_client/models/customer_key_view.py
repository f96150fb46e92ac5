from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

T = TypeVar("T", bound="CustomerKeyView")


@_attrs_define
class CustomerKeyView:
    """A customer key; `secret` only in the answer that created it.

    Attributes:
        created_at (str):
        customer (str):
        held (str): Held now by its requests in flight.
        id (str):
        limit_period (str):
        name (str):
        object_ (str): Always `customer_key`. Example: customer_key.
        revoked (bool):
        spent (str): Charged (less refunds) in the current period of the limit.
        expires_at (None | str | Unset):
        secret (None | str | Unset):
        spend_limit (None | str | Unset):
    """

    created_at: str
    customer: str
    held: str
    id: str
    limit_period: str
    name: str
    object_: str
    revoked: bool
    spent: str
    expires_at: None | str | Unset = UNSET
    secret: None | str | Unset = UNSET
    spend_limit: None | str | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        created_at = self.created_at

        customer = self.customer

        held = self.held

        id = self.id

        limit_period = self.limit_period

        name = self.name

        object_ = self.object_

        revoked = self.revoked

        spent = self.spent

        expires_at: None | str | Unset
        if isinstance(self.expires_at, Unset):
            expires_at = UNSET
        else:
            expires_at = self.expires_at

        secret: None | str | Unset
        if isinstance(self.secret, Unset):
            secret = UNSET
        else:
            secret = self.secret

        spend_limit: None | str | Unset
        if isinstance(self.spend_limit, Unset):
            spend_limit = UNSET
        else:
            spend_limit = self.spend_limit

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "created_at": created_at,
                "customer": customer,
                "held": held,
                "id": id,
                "limit_period": limit_period,
                "name": name,
                "object": object_,
                "revoked": revoked,
                "spent": spent,
            }
        )
        if expires_at is not UNSET:
            field_dict["expires_at"] = expires_at
        if secret is not UNSET:
            field_dict["secret"] = secret
        if spend_limit is not UNSET:
            field_dict["spend_limit"] = spend_limit

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        created_at = d.pop("created_at")

        customer = d.pop("customer")

        held = d.pop("held")

        id = d.pop("id")

        limit_period = d.pop("limit_period")

        name = d.pop("name")

        object_ = d.pop("object")

        revoked = d.pop("revoked")

        spent = d.pop("spent")

        def _parse_expires_at(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        expires_at = _parse_expires_at(d.pop("expires_at", UNSET))

        def _parse_secret(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        secret = _parse_secret(d.pop("secret", UNSET))

        def _parse_spend_limit(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        spend_limit = _parse_spend_limit(d.pop("spend_limit", UNSET))

        customer_key_view = cls(
            created_at=created_at,
            customer=customer,
            held=held,
            id=id,
            limit_period=limit_period,
            name=name,
            object_=object_,
            revoked=revoked,
            spent=spent,
            expires_at=expires_at,
            secret=secret,
            spend_limit=spend_limit,
        )

        customer_key_view.additional_properties = d
        return customer_key_view

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
