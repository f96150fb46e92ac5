from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast

from attrs import define as _attrs_define

from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.plan_terms import PlanTerms


T = TypeVar("T", bound="CreatePlan")


@_attrs_define
class CreatePlan:
    """
    Attributes:
        name (str):
        id (None | str | Unset):
        reason (None | str | Unset): Why (kept in the audit log); "changed through the API" when absent.
        terms (None | PlanTerms | Unset):
    """

    name: str
    id: None | str | Unset = UNSET
    reason: None | str | Unset = UNSET
    terms: None | PlanTerms | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        from ..models.plan_terms import PlanTerms  # noqa: PLC0415

        name = self.name

        id: None | str | Unset
        if isinstance(self.id, Unset):
            id = UNSET
        else:
            id = self.id

        reason: None | str | Unset
        if isinstance(self.reason, Unset):
            reason = UNSET
        else:
            reason = self.reason

        terms: dict[str, Any] | None | Unset
        if isinstance(self.terms, Unset):
            terms = UNSET
        elif isinstance(self.terms, PlanTerms):
            terms = self.terms.to_dict()
        else:
            terms = self.terms

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "name": name,
            }
        )
        if id is not UNSET:
            field_dict["id"] = id
        if reason is not UNSET:
            field_dict["reason"] = reason
        if terms is not UNSET:
            field_dict["terms"] = terms

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.plan_terms import PlanTerms  # noqa: PLC0415

        d = dict(src_dict)
        name = d.pop("name")

        def _parse_id(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        id = _parse_id(d.pop("id", UNSET))

        def _parse_reason(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        reason = _parse_reason(d.pop("reason", UNSET))

        def _parse_terms(data: object) -> None | PlanTerms | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, dict):
                    raise TypeError()
                terms_type_1 = PlanTerms.from_dict(data)

                return terms_type_1
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(None | PlanTerms | Unset, data)

        terms = _parse_terms(d.pop("terms", UNSET))

        create_plan = cls(
            name=name,
            id=id,
            reason=reason,
            terms=terms,
        )

        return create_plan
