from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast

from attrs import define as _attrs_define

from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.plan_terms import PlanTerms


T = TypeVar("T", bound="UpdatePlan")


@_attrs_define
class UpdatePlan:
    """
    Attributes:
        name (None | str | Unset):
        reason (None | str | Unset): Why (kept in the audit log); "changed through the API" when absent.
        terms (PlanTerms | Unset): The terms of one plan version. Stored as JSON; every field has a default so `{}` is
            the standard plan (list prices).
    """

    name: None | str | Unset = UNSET
    reason: None | str | Unset = UNSET
    terms: PlanTerms | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        name: None | str | Unset
        if isinstance(self.name, Unset):
            name = UNSET
        else:
            name = self.name

        reason: None | str | Unset
        if isinstance(self.reason, Unset):
            reason = UNSET
        else:
            reason = self.reason

        terms: dict[str, Any] | Unset = UNSET
        if not isinstance(self.terms, Unset):
            terms = self.terms.to_dict()

        field_dict: dict[str, Any] = {}

        field_dict.update({})
        if name is not UNSET:
            field_dict["name"] = name
        if reason is not UNSET:
            field_dict["reason"] = reason
        if terms is not UNSET:
            field_dict["terms"] = terms

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.plan_terms import PlanTerms  # noqa: PLC0415

        d = dict(src_dict)

        def _parse_name(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        name = _parse_name(d.pop("name", UNSET))

        def _parse_reason(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        reason = _parse_reason(d.pop("reason", UNSET))

        _terms = d.pop("terms", UNSET)
        terms: PlanTerms | Unset
        if isinstance(_terms, Unset):
            terms = UNSET
        else:
            terms = PlanTerms.from_dict(_terms)

        update_plan = cls(
            name=name,
            reason=reason,
            terms=terms,
        )

        return update_plan
