"""Date-range filters shared by the list pages, CSV exports and REST lists of several apps (the ledger,
usage, the audit log): one form, one way to apply it to a REST request, one schema for its parameters."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import Any

from django import forms
from django.db.models import QuerySet
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter
from rest_framework.exceptions import ValidationError


def _day_start(day) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min), timezone.get_current_timezone())


class DateRangeForm(forms.Form):
    since = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}), label="From")
    until = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}), label="To")

    def clean(self):
        data = super().clean()
        if data.get("since") and data.get("until") and data["since"] > data["until"]:
            raise forms.ValidationError("'From' must be on or before 'To'.")
        return data

    def _range(self, qs: QuerySet, field: str) -> QuerySet:
        data = self.cleaned_data if self.is_bound and self.is_valid() else {}
        if data.get("since"):
            qs = qs.filter(**{f"{field}__gte": _day_start(data["since"])})
        if data.get("until"):
            qs = qs.filter(**{f"{field}__lt": _day_start(data["until"] + timedelta(days=1))})
        return qs


def filtered(form_class: type[forms.Form], request: Any, qs: QuerySet) -> QuerySet:
    """A REST list's queryset narrowed by the filter form bound to the query string; 400 when it is invalid
    (all rows under a filter the caller thinks applied would be worse than an error)."""
    form = form_class(request.query_params or None)
    if form.is_bound and not form.is_valid():
        raise ValidationError(form.errors)
    return form.filter(qs)


# The schema of DateRangeForm's query parameters, for extend_schema(parameters=[..., *DATE_RANGE]).
DATE_RANGE = [
    OpenApiParameter("since", OpenApiTypes.DATE, description="From this day (UTC), inclusive."),
    OpenApiParameter("until", OpenApiTypes.DATE, description="To this day (UTC), inclusive."),
]
