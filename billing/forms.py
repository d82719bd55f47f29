"""Filters for the ledger and usage (page, CSV and API share them) and the operators' entry form."""

from __future__ import annotations

import uuid
from datetime import date, timedelta

from django import forms
from django.db.models import Q, QuerySet

from billing.ledger import OPERATOR_KINDS, POSITIVE_KINDS, check_balance_after, get_account
from billing.models import CreditEntry, EntryKind, UsageRecord
from billing.money import parse_credits
from lib.filters import DateRangeForm


class LedgerFilterForm(DateRangeForm):
    kind = forms.ChoiceField(required=False, choices=[("", "All kinds"), *EntryKind.choices])
    q = forms.CharField(required=False, max_length=100, label="Search",
                        widget=forms.TextInput(attrs={"type": "search", "placeholder": "Reference, reason or e-mail"}))

    def filter(self, qs: QuerySet[CreditEntry]) -> QuerySet[CreditEntry]:
        qs = self._range(qs, "created_at")
        data = self.cleaned_data if self.is_bound and self.is_valid() else {}
        if data.get("kind"):
            qs = qs.filter(kind=data["kind"])
        if data.get("q"):
            qs = qs.filter(Q(reference__icontains=data["q"]) | Q(reason__icontains=data["q"])
                           | Q(created_by_email__icontains=data["q"]))
        return qs


class UsageFilterForm(DateRangeForm):
    project = forms.CharField(required=False, max_length=100)
    service = forms.CharField(required=False, max_length=100)

    def filter(self, qs: QuerySet[UsageRecord]) -> QuerySet[UsageRecord]:
        qs = self._range(qs, "window_start")
        data = self.cleaned_data if self.is_bound and self.is_valid() else {}
        if data.get("project"):
            qs = qs.filter(project_key=data["project"])
        if data.get("service"):
            qs = qs.filter(service=data["service"])
        return qs


class UsagePeriodForm(DateRangeForm):
    """The billing page's usage period (fields `usage-since`, `usage-until`): the last 30 days by default."""

    DEFAULT_DAYS = 30
    MAX_DAYS = 366

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("prefix", "usage")
        super().__init__(*args, **kwargs)

    def clean(self):
        data = super().clean()
        if data.get("since") and data.get("until") and (data["until"] - data["since"]).days >= self.MAX_DAYS:
            raise forms.ValidationError(f"Choose a period of at most {self.MAX_DAYS} days.")
        return data

    def period(self, today: date) -> tuple[date, date]:
        """(first day, last day), inclusive; an invalid or empty choice falls back to the default."""
        data = self.cleaned_data if self.is_bound and self.is_valid() else {}
        until = data.get("until") or (data["since"] + timedelta(days=self.DEFAULT_DAYS - 1) if data.get("since")
                                      else today)
        since = data.get("since") or until - timedelta(days=self.DEFAULT_DAYS - 1)
        return since, until


class OperatorEntryForm(forms.ModelForm):
    """Django admin: an operator adds a grant, manual top-up, refund or adjustment, with a reason."""

    credits = forms.CharField(
        label="Amount (credits)", help_text="Up to three decimals; negative only for adjustments. 1 credit = 1,000 "
        "millicredits.",
    )
    kind = forms.ChoiceField(choices=[(k.value, k.label) for k in OPERATOR_KINDS])
    reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}), help_text="Required: why this entry is made. Part of the audit trail."
    )
    idempotency_key = forms.CharField(
        widget=forms.HiddenInput, help_text="Generated per form, so submitting it twice records one entry."
    )

    class Meta:
        model = CreditEntry
        fields = ["organization", "kind", "credits", "reference", "reason", "idempotency_key"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["idempotency_key"].initial = f"admin:{uuid.uuid4()}"
        self.fields["reference"].help_text = "For a top-up: the payment's reference (bank transfer id, invoice ...)."

    def validate_unique(self) -> None:
        # A resubmitted form reuses its idempotency key: the service returns the recorded entry.
        pass

    def clean_credits(self) -> int:
        try:
            return parse_credits(self.cleaned_data["credits"])
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from None

    def clean_reason(self) -> str:
        reason = self.cleaned_data["reason"].strip()
        if not reason:
            raise forms.ValidationError("Say why; the reason is part of the audit trail.")
        return reason

    def clean(self):
        data = super().clean()
        amount, kind = data.get("credits"), data.get("kind")
        if amount is not None and kind:
            if amount == 0:
                self.add_error("credits", "Zero moves no credits.")
            elif kind in POSITIVE_KINDS and amount < 0:
                self.add_error("credits", "Only adjustments can be negative.")
            elif data.get("organization") is not None:
                try:
                    check_balance_after(get_account(data["organization"]).balance, amount)
                except ValueError as exc:
                    self.add_error("credits", str(exc))
        return data
