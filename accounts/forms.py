from __future__ import annotations

from django import forms

from accounts.models import Role


class OrganizationForm(forms.Form):
    name = forms.CharField(max_length=100)


class InviteForm(forms.Form):
    email = forms.EmailField()
    role = forms.ChoiceField(choices=Role.choices, initial=Role.MEMBER)


class RoleForm(forms.Form):
    role = forms.ChoiceField(choices=Role.choices)


class SSHKeyForm(forms.Form):
    name = forms.CharField(max_length=100, required=False, help_text="Defaults to the key's comment.")
    public_key = forms.CharField(widget=forms.Textarea(attrs={"rows": 4}), help_text="Contents of your .pub file.")


class APITokenForm(forms.Form):
    name = forms.CharField(max_length=100)
    expires_in_days = forms.IntegerField(required=False, min_value=1, max_value=3650,
                                         help_text="Leave empty for a token that does not expire.")
