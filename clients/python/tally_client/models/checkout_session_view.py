from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from attrs import define as _attrs_define
from attrs import field as _attrs_field

T = TypeVar("T", bound="CheckoutSessionView")


@_attrs_define
class CheckoutSessionView:
    """
    Attributes:
        amount (str):
        id (str): The Checkout Session id (`cs_…`).
        object_ (str): Always `checkout.session`. Example: checkout.session.
        status (str):
        topup (str): The pending top-up this session pays for.
        url (str): Where to send the customer: Stripe Checkout, or the simulated checkout page.
    """

    amount: str
    id: str
    object_: str
    status: str
    topup: str
    url: str
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        amount = self.amount

        id = self.id

        object_ = self.object_

        status = self.status

        topup = self.topup

        url = self.url

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "amount": amount,
                "id": id,
                "object": object_,
                "status": status,
                "topup": topup,
                "url": url,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        amount = d.pop("amount")

        id = d.pop("id")

        object_ = d.pop("object")

        status = d.pop("status")

        topup = d.pop("topup")

        url = d.pop("url")

        checkout_session_view = cls(
            amount=amount,
            id=id,
            object_=object_,
            status=status,
            topup=topup,
            url=url,
        )

        checkout_session_view.additional_properties = d
        return checkout_session_view

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
