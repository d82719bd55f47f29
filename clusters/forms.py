from __future__ import annotations

from django import forms

from accounts.models import Organization
from clusters.models import Cluster


class ClusterForm(forms.ModelForm):
    organizations = forms.ModelMultipleChoiceField(
        queryset=Organization.objects.all(), required=False, widget=forms.SelectMultiple(attrs={"size": 6}),
        help_text="Used when the cluster is not open to every organization.",
    )

    class Meta:
        model = Cluster
        fields = ["name", "base_domain", "ssh_endpoint", "all_organizations", "organizations"]
        labels = {"base_domain": "Public base domain", "ssh_endpoint": "SSH endpoint (host:port)",
                  "all_organizations": "Open to every organization"}

    def clean_base_domain(self) -> str:
        value = self.cleaned_data["base_domain"].strip().strip(".").lower()
        if not value or " " in value or "/" in value:
            raise forms.ValidationError("Enter a domain such as apps.example.com.")
        return value
