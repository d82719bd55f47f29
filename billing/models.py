"""Credits: plans and prices, each organization's billing account, the append-only ledger, usage
records from the agents, suspension records and balance notifications.

All money is integer millicredits; prices are integer microcredits (see billing/money.py).
"""

from __future__ import annotations

from typing import Any, NamedTuple

from django.conf import settings
from django.db import models
from django.db.models import Q

from billing.money import (
    FINE_PER_GIB_SECOND_OF_MONTH,
    FINE_PER_MIB_SECOND,
    FINE_PER_MILLICORE_SECOND,
    FINE_PER_MILLICREDIT,
    GIB,
    format_credits,
)


class CostParts(NamedTuple):
    """A cost split by what was used, in fine units; `total` is their sum."""

    compute: int  # CPU and memory of running replicas
    volume: int  # volume storage
    database: int  # the project's managed database
    bucket: int  # the project's bucket

    @property
    def total(self) -> int:
        return self.compute + self.volume + self.database + self.bucket


class PlanQuerySet(models.QuerySet["Plan"]):
    def get_default(self) -> Plan:
        """The plan new organizations get; created with the model's defaults if none exists yet."""
        plan = self.filter(is_default=True).first()
        if plan is not None:
            return plan
        plan, _ = self.get_or_create(slug="default", defaults={"name": "Default", "is_default": True})
        return plan


class Plan(models.Model):
    """Prices and limits, managed by operators in Django admin. Prices are integer microcredits."""

    name = models.CharField(max_length=100)
    slug = models.SlugField(max_length=40, unique=True)
    is_default = models.BooleanField(default=False, help_text="Given to new organizations. Exactly one plan.")
    # Prices, microcredits (1 credit = 1,000,000) per unit. Compute is charged on *requested*
    # resources while replicas run; a service scaled to zero costs nothing.
    price_vcpu_second = models.PositiveBigIntegerField(default=20, help_text="Microcredits per vCPU-second.")
    price_memory_gib_second = models.PositiveBigIntegerField(
        default=2, help_text="Microcredits per GiB-second of requested memory."
    )
    price_volume_gib_month = models.PositiveBigIntegerField(
        default=100_000, help_text="Microcredits per GiB-month of volume storage."
    )
    price_database_gib_month = models.PositiveBigIntegerField(
        default=200_000, help_text="Microcredits per GiB-month of database storage (when reported)."
    )
    price_bucket_gib_month = models.PositiveBigIntegerField(
        default=20_000, help_text="Microcredits per GiB-month of bucket storage (when reported)."
    )
    # Limits; the deploy pipeline turns them into ResourceQuota and LimitRange via projects.plans.limits_for().
    max_projects = models.PositiveIntegerField(default=5)
    max_services = models.PositiveIntegerField(default=20, help_text="Per project.")
    max_replicas = models.PositiveIntegerField(default=3, help_text="Per service.")
    default_cpu_request_millicores = models.PositiveIntegerField(default=50)
    default_cpu_limit_millicores = models.PositiveIntegerField(default=500)
    default_memory_request_mib = models.PositiveIntegerField(default=64)
    default_memory_limit_mib = models.PositiveIntegerField(default=512)
    default_volume_gib = models.PositiveIntegerField(default=1)
    max_container_cpu_millicores = models.PositiveIntegerField(default=2000)
    max_container_memory_mib = models.PositiveIntegerField(default=4096)
    quota_cpu_millicores = models.PositiveIntegerField(default=4000, help_text="Per project namespace.")
    quota_memory_mib = models.PositiveIntegerField(default=8192, help_text="Per project namespace.")
    quota_pods = models.PositiveIntegerField(default=20)
    quota_storage_gib = models.PositiveIntegerField(default=20)
    quota_volumes = models.PositiveIntegerField(default=10)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = PlanQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["is_default"], condition=Q(is_default=True), name="one_default_plan")
        ]

    def __str__(self) -> str:
        return self.name

    def cost_fine(self, **usage: int) -> int:
        """Exact cost of usage in fine units (integer arithmetic only; see billing/money.py and cost_parts)."""
        return self.cost_parts(**usage).total

    def cost_parts(
        self,
        *,
        cpu_millicore_seconds: int = 0,
        memory_mib_seconds: int = 0,
        volume_gib_seconds: int = 0,
        database_gib_seconds: int = 0,
        bucket_gib_seconds: int = 0,
        database_byte_seconds: int = 0,
        bucket_byte_seconds: int = 0,
    ) -> CostParts:
        """The cost of usage in fine units, split by what was used.

        Database and bucket sizes come in bytes (byte-seconds): their GiB-month price applies pro rata to
        the byte, so a 300 MB database costs 300 MB's share. That share is a whole number of fine units
        only when bytes x seconds x price is a multiple of 2^28; the rest, under one fine unit (10^-13
        credit) per window, is rounded down. Whole-GiB quantities stay exact as before.
        """
        def per_month(gib_seconds: int, byte_seconds: int, price: int) -> int:
            return (gib_seconds * price * FINE_PER_GIB_SECOND_OF_MONTH
                    + byte_seconds * price * FINE_PER_GIB_SECOND_OF_MONTH // GIB)

        return CostParts(
            compute=(cpu_millicore_seconds * self.price_vcpu_second * FINE_PER_MILLICORE_SECOND
                     + memory_mib_seconds * self.price_memory_gib_second * FINE_PER_MIB_SECOND),
            volume=per_month(volume_gib_seconds, 0, self.price_volume_gib_month),
            database=per_month(database_gib_seconds, database_byte_seconds, self.price_database_gib_month),
            bucket=per_month(bucket_gib_seconds, bucket_byte_seconds, self.price_bucket_gib_month),
        )


class NoticeLevel(models.TextChoices):
    """How far down the balance is; a notice goes out each time it moves to a worse level."""

    OK = "ok", "OK"
    LOW = "low", "Low balance"
    ZERO = "zero", "Out of credits"


NOTICE_SEVERITY = {NoticeLevel.OK: 0, NoticeLevel.LOW: 1, NoticeLevel.ZERO: 2}


class BillingAccount(models.Model):
    """An organization's billing state. Its balance is a cache of the ledger's sum, only ever
    changed together with a new CreditEntry, in one transaction, under this row's lock."""

    organization = models.OneToOneField(
        "accounts.Organization", on_delete=models.PROTECT, related_name="billing_account"
    )
    plan = models.ForeignKey(Plan, on_delete=models.PROTECT, related_name="accounts")
    balance = models.BigIntegerField(default=0, editable=False, help_text="Millicredits; cached sum of the ledger.")
    usage_remainder = models.BigIntegerField(
        default=0, editable=False, help_text="Fine units of usage charged but below one millicredit, carried."
    )
    notice_level = models.CharField(
        max_length=10, choices=NoticeLevel.choices, default=NoticeLevel.OK, editable=False
    )
    grace_minutes = models.PositiveIntegerField(
        null=True, blank=True,
        help_text="Minutes at zero before suspension; empty uses BILLING_SUSPEND_GRACE_MINUTES.",
    )
    grace_until = models.DateTimeField(
        null=True, blank=True, help_text="Set when the balance reaches zero; suspension follows at this time."
    )
    suspended_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["organization__name"]

    def __str__(self) -> str:
        return f"{self.organization} ({format_credits(self.balance)} credits)"

    @property
    def is_suspended(self) -> bool:
        return self.suspended_at is not None


class EntryKind(models.TextChoices):
    SIGNUP_GRANT = "signup_grant", "Signup grant"
    GRANT = "grant", "Grant"
    TOP_UP = "top_up", "Top-up"
    USAGE = "usage", "Usage"
    REFUND = "refund", "Refund"
    ADJUSTMENT = "adjustment", "Adjustment"


class AppendOnlyQuerySet(models.QuerySet):
    def update(self, **kwargs: Any) -> int:
        raise TypeError(f"{self.model.__name__} is append-only; record a correcting entry instead.")

    def delete(self) -> tuple[int, dict[str, int]]:
        raise TypeError(f"{self.model.__name__} is append-only; record a correcting entry instead.")


class AppendOnlyModel(models.Model):
    """Rows are written once. On PostgreSQL a trigger (migration 0002) enforces it for raw SQL too."""

    objects = AppendOnlyQuerySet.as_manager()

    class Meta:
        abstract = True

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise TypeError(f"{type(self).__name__} is append-only; record a correcting entry instead.")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        raise TypeError(f"{type(self).__name__} is append-only; record a correcting entry instead.")


class CreditEntry(AppendOnlyModel):
    """One line of the ledger. Positive amounts add credits, negative ones consume them.

    Never edited or deleted: a mistake is corrected by a new entry (kind adjustment or refund).
    The idempotency key makes every write safe to retry: the same key never produces two entries.
    """

    organization = models.ForeignKey("accounts.Organization", on_delete=models.PROTECT, related_name="credit_entries")
    amount = models.BigIntegerField(help_text="Millicredits; positive adds credits, negative consumes them.")
    kind = models.CharField(max_length=20, choices=EntryKind.choices)
    reference = models.CharField(max_length=200, blank=True, help_text="Payment reference, usage window, ...")
    reason = models.TextField(blank=True, help_text="Why an operator made this entry.")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+",
        help_text="Empty for entries the system made (usage, signup grant).",
    )
    created_by_email = models.CharField(
        max_length=254, blank=True, help_text="Kept when the user account is deleted later."
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    idempotency_key = models.CharField(max_length=200, unique=True)
    balance_after = models.BigIntegerField(help_text="The organization's balance right after this entry.")

    class Meta(AppendOnlyModel.Meta):
        ordering = ["-id"]
        verbose_name_plural = "credit entries"
        indexes = [models.Index(fields=["organization", "kind", "created_at"])]
        constraints = [models.CheckConstraint(condition=~Q(amount=0), name="credit_entry_amount_not_zero")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {format_credits(self.amount, sign=True)} for {self.organization_id}"


class UsageRecord(models.Model):
    """What one service of one project used in one window, as reported by its cluster's agent.

    Unique on (cluster, project, service, window): a repeated or late report never adds a second
    record. Only the charge fields change after creation, once, when the window is charged.
    """

    organization = models.ForeignKey("accounts.Organization", on_delete=models.PROTECT, related_name="usage_records")
    cluster_key = models.CharField(max_length=100, help_text="The cluster's slug.")
    project_key = models.CharField(max_length=100, help_text="The project's namespace (or id).")
    service = models.CharField(
        max_length=100, blank=True, help_text="Compose service; empty for the project's database and bucket."
    )
    window_start = models.DateTimeField()
    window_seconds = models.PositiveIntegerField()
    replica_seconds = models.PositiveBigIntegerField(help_text="Seconds replicas ran, summed over replicas.")
    cpu_millicores = models.PositiveIntegerField(help_text="CPU request per replica.")
    memory_mib = models.PositiveIntegerField(help_text="Memory request per replica.")
    volume_gib = models.PositiveIntegerField(default=0)
    database_gib = models.PositiveIntegerField(default=0)
    bucket_gib = models.PositiveIntegerField(default=0)
    database_bytes = models.PositiveBigIntegerField(default=0, help_text="Managed database size (project-level).")
    bucket_bytes = models.PositiveBigIntegerField(default=0, help_text="Bucket size (project-level).")
    cost_fine = models.PositiveBigIntegerField(help_text="Exact cost in fine units at the plan's prices on arrival.")
    # The parts of cost_fine that are not compute (CPU and memory): compute is the rest.
    volume_fine = models.PositiveBigIntegerField(default=0, help_text="Of cost_fine: volume storage.")
    database_fine = models.PositiveBigIntegerField(default=0, help_text="Of cost_fine: the managed database.")
    bucket_fine = models.PositiveBigIntegerField(default=0, help_text="Of cost_fine: the bucket.")
    received_at = models.DateTimeField(auto_now_add=True)
    charged_at = models.DateTimeField(null=True, blank=True)
    charge_key = models.CharField(max_length=200, blank=True, help_text="Idempotency key of the usage charge.")
    charge_entry = models.ForeignKey(
        CreditEntry, on_delete=models.PROTECT, null=True, blank=True, related_name="usage_records",
        help_text="Empty when the window's charge was below one millicredit (carried as remainder).",
    )

    class Meta:
        ordering = ["-window_start", "project_key", "service"]
        constraints = [
            models.UniqueConstraint(
                fields=["cluster_key", "project_key", "service", "window_start"], name="one_usage_record_per_window"
            )
        ]
        indexes = [
            models.Index(fields=["organization", "window_start"]),
            models.Index(fields=["charged_at", "window_start"]),
        ]

    def __str__(self) -> str:
        return f"{self.label} @ {self.window_start:%Y-%m-%d %H:%M}"

    @property
    def label(self) -> str:
        """"<project>/<service>", or "<project> (data)" for the project's database and bucket."""
        return data_label(self.project_key, self.service)

    @property
    def compute_fine(self) -> int:
        return self.cost_fine - self.volume_fine - self.database_fine - self.bucket_fine

    @property
    def cost_millicredits(self) -> int:
        """Whole millicredits of this record's cost (the ledger charges per window, with remainders)."""
        return self.cost_fine // FINE_PER_MILLICREDIT


def data_label(project_key: str, service: str) -> str:
    return f"{project_key}/{service}" if service else f"{project_key} (data)"


class SuspensionAction(models.TextChoices):
    SUSPENDED = "suspended", "Suspended"
    RESUMED = "resumed", "Resumed"


class SuspensionRecord(AppendOnlyModel):
    """Every suspension and resumption of an organization, in order."""

    organization = models.ForeignKey(
        "accounts.Organization", on_delete=models.PROTECT, related_name="suspension_records"
    )
    action = models.CharField(max_length=10, choices=SuspensionAction.choices)
    reason = models.CharField(max_length=300)
    balance = models.BigIntegerField(help_text="Millicredits at the time.")
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta(AppendOnlyModel.Meta):
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"{self.organization_id} {self.action} at {self.created_at:%Y-%m-%d %H:%M}"


class BalanceNotification(models.Model):
    """An e-mail owed to owners and admins because the balance crossed a threshold (an outbox row:
    written in the transaction that saw the crossing, sent by a task after commit)."""

    class Kind(models.TextChoices):
        LOW = "low", "Low balance"
        ZERO = "zero", "Out of credits"
        SUSPENDED = "suspended", "Services suspended"

    organization = models.ForeignKey(
        "accounts.Organization", on_delete=models.CASCADE, related_name="balance_notifications"
    )
    kind = models.CharField(max_length=10, choices=Kind.choices)
    balance = models.BigIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    recipients = models.TextField(blank=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} for {self.organization_id}"
