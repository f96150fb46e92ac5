from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

T = TypeVar("T", bound="TransactionView")


@_attrs_define
class TransactionView:
    """
    Attributes:
        amount (str): The change to the customer's balance; for `hold` and `release`, the amount moved
            between available and held.
        created_at (str):
        id (str):
        kind (str): `topup`, `usage`, `grant`, `refund`, `dispute`, `expiry`, `adjustment`, `hold`, `release`.
        object_ (str): Always `transaction`. Example: transaction.
        reference (str):
        reason (None | str | Unset):
    """

    amount: str
    created_at: str
    id: str
    kind: str
    object_: str
    reference: str
    reason: None | str | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        amount = self.amount

        created_at = self.created_at

        id = self.id

        kind = self.kind

        object_ = self.object_

        reference = self.reference

        reason: None | str | Unset
        if isinstance(self.reason, Unset):
            reason = UNSET
        else:
            reason = self.reason

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "amount": amount,
                "created_at": created_at,
                "id": id,
                "kind": kind,
                "object": object_,
                "reference": reference,
            }
        )
        if reason is not UNSET:
            field_dict["reason"] = reason

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        amount = d.pop("amount")

        created_at = d.pop("created_at")

        id = d.pop("id")

        kind = d.pop("kind")

        object_ = d.pop("object")

        reference = d.pop("reference")

        def _parse_reason(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        reason = _parse_reason(d.pop("reason", UNSET))

        transaction_view = cls(
            amount=amount,
            created_at=created_at,
            id=id,
            kind=kind,
            object_=object_,
            reference=reference,
            reason=reason,
        )

        transaction_view.additional_properties = d
        return transaction_view

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
