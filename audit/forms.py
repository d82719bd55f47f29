"""The audit log's filter (the page, the CSV and the API share it)."""

from __future__ import annotations

from django import forms
from django.db.models import QuerySet

from audit.models import Action, AuditEvent
from lib.filters import DateRangeForm


class AuditFilterForm(DateRangeForm):
    action = forms.ChoiceField(required=False, choices=[("", "All actions"), *Action.choices])
    actor = forms.CharField(required=False, max_length=254, label="Actor",
                            help_text="Part of the e-mail of who did it.")

    def filter(self, qs: QuerySet[AuditEvent]) -> QuerySet[AuditEvent]:
        qs = self._range(qs, "created_at")
        data = self.cleaned_data if self.is_bound and self.is_valid() else {}
        if data.get("action"):
            qs = qs.filter(action=data["action"])
        if data.get("actor"):
            qs = qs.filter(actor_label__icontains=data["actor"].strip())
        return qs
