"""The admin replaces the original alerts.yaml: rules, channels, silences, history, halts, summary time."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.html import format_html

from alerts.delivery import send_test_alert
from alerts.models import (
    WEEKDAY_NAMES,
    Alert,
    AlertRule,
    AlertState,
    Channel,
    DeliveryAttempt,
    Repeat,
    Silence,
    SummarySchedule,
    TradingHalt,
)
from alerts.rules import describe, problems
from alerts.tasks import enqueue
from trades.paging import CappedCountPaginator


class AlertRuleForm(forms.ModelForm):
    """Add, change and the rule list's inline edits: the kind's judge (``alerts.rules``) decides.

    An inline edit holds only some fields; the rest are the stored rule's, so a
    list edit is judged as the whole rule it would make. A refusal names the
    field, and the admin then saves nothing of the list.
    """

    JUDGED = ("kind", "threshold", "event_kind", "per_trade")

    class Meta:
        model = AlertRule
        fields = "__all__"

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if any(name in self.errors for name in self.JUDGED):
            return cleaned  # a field already refused on its own: judge once it parses
        candidate = {name: cleaned.get(name, getattr(self.instance, name)) for name in self.JUDGED}
        for name, problem in problems(candidate).items():
            if name in self.fields:
                self.add_error(name, problem)
            else:
                self.add_error(None, f"{name}: {problem} (open the rule to change it)")
        return cleaned


@admin.register(AlertRule)
class AlertRuleAdmin(admin.ModelAdmin):
    form = AlertRuleForm
    list_display = (
        "name",
        "kind",
        "event_kind",
        "threshold",
        "level",
        "enabled",
        "cooldown_minutes",
        "scope",
        "problem",
    )
    # An operator changes a threshold straight from the list; the next trade is judged by it.
    list_editable = ("threshold", "level", "enabled", "cooldown_minutes")
    list_filter = ("kind", "level", "enabled", "bot")
    search_fields = ("name", "strategy", "symbol")
    fieldsets = (
        (
            None,
            {"fields": ("name", "kind", "event_kind", "threshold", "level", "enabled", "cooldown_minutes")},
        ),
        ("Scope", {"fields": ("bot", "strategy", "symbol", "per_trade")}),
    )

    def get_changelist_form(self, request: HttpRequest, **kwargs: Any) -> type[forms.ModelForm]:
        return super().get_changelist_form(request, form=AlertRuleForm, **kwargs)

    @admin.display(description="problem")
    def problem(self, rule: AlertRule) -> str:
        found = rule.problems
        if not found:
            return ""
        return format_html('<strong style="color:#ba2121">⚠ not judged: {}</strong>', describe(found))

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> HttpResponse:
        if request.method == "GET":
            for rule in AlertRule.objects.broken():
                messages.warning(
                    request,
                    f"Rule {rule.name} is not evaluated until it is fixed: {describe(rule.problems)}",
                )
        return super().changelist_view(request, extra_context)

    def change_view(self, request: HttpRequest, object_id: str, *args: Any, **kwargs: Any) -> HttpResponse:
        rule = AlertRule.objects.filter(pk=object_id).first() if object_id.isdigit() else None
        if request.method == "GET" and rule is not None and rule.problems:
            found = describe(rule.problems)
            messages.warning(request, f"This rule is not evaluated until it is fixed: {found}")
        return super().change_view(request, object_id, *args, **kwargs)


class ChannelForm(forms.ModelForm):
    """The webhook URL is write-only: typed in, never shown back (it is the secret)."""

    webhook_url = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off", "size": 80}),
        help_text="Leave empty to keep the current one. Without one, DISCORD_WEBHOOK_URL is used.",
    )
    use_environment = forms.BooleanField(
        required=False, help_text="Forget the URL entered here and use DISCORD_WEBHOOK_URL."
    )

    class Meta:
        model = Channel
        fields = (
            "name",
            "kind",
            "webhook_url",
            "min_level",
            "enabled",
            "rate_limit_per_minute",
            "disabled_reason",
        )

    def clean_webhook_url(self) -> str:
        value = self.cleaned_data["webhook_url"].strip()
        if value and not value.startswith(("https://", "http://")):
            raise forms.ValidationError(
                "Enter the webhook URL Discord shows (https://discord.com/api/webhooks/…)."
            )
        return value

    def save(self, commit: bool = True) -> Channel:
        channel: Channel = super().save(commit=False)
        new_url = self.cleaned_data.get("webhook_url")
        if self.cleaned_data.get("use_environment"):
            channel.webhook_url = ""
        elif not new_url and self.instance.pk:
            channel.webhook_url = Channel.objects.get(pk=self.instance.pk).webhook_url
        if new_url or self.cleaned_data.get("use_environment"):
            # A new destination is a fresh start after a permanent failure.
            channel.disabled_reason = ""
            channel.disabled_at = None
        if commit:
            channel.save()
        return channel


@admin.action(description="Send a test alert through the selected channels")
def send_test(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[Channel]) -> None:
    for channel, state in send_test_alert(channels=list(queryset)):
        level = messages.SUCCESS if state == AlertState.SENT else messages.WARNING
        modeladmin.message_user(request, f"{channel.name}: test alert {state}", level)


@admin.action(description="Resume delivery (clear the failure that disabled the channel)")
def resume_channel(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[Channel]) -> None:
    count = queryset.exclude(disabled_reason="").update(disabled_reason="", disabled_at=None)
    enqueue("alerts.tasks.deliver")
    modeladmin.message_user(request, f"{count} channel(s) resumed; waiting alerts are being sent.")


@admin.register(Channel)
class ChannelAdmin(admin.ModelAdmin):
    form = ChannelForm
    list_display = (
        "name",
        "kind",
        "destination_shown",
        "min_level",
        "enabled",
        "rate_limit_per_minute",
        "status",
    )
    list_editable = ("min_level", "enabled", "rate_limit_per_minute")
    readonly_fields = ("destination_shown", "disabled_at")
    actions = (send_test, resume_channel)

    def get_fields(self, request: HttpRequest, obj: Channel | None = None) -> list[str]:
        fields = ["name", "kind", "destination_shown", "webhook_url", "use_environment", "min_level"]
        return [*fields, "enabled", "rate_limit_per_minute", "disabled_reason", "disabled_at"]

    @admin.display(description="webhook")
    def destination_shown(self, channel: Channel) -> str:
        if not channel.destination:
            return "none: alerts are stored, not sent (set DISCORD_WEBHOOK_URL)"
        origin = "entered here" if channel.webhook_url else "from DISCORD_WEBHOOK_URL"
        return f"{channel.masked_destination} ({origin})"

    @admin.display(description="status")
    def status(self, channel: Channel) -> str:
        if channel.disabled_reason:
            return format_html(
                '<strong style="color:#ba2121">⚠ disabled: {}</strong>', channel.disabled_reason
            )
        if not channel.enabled:
            return "off"
        return "ok" if channel.destination else "no webhook"

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> HttpResponse:
        _warn_disabled_channels(request)
        return super().changelist_view(request, extra_context)

    def change_view(self, request: HttpRequest, object_id: str, *args: Any, **kwargs: Any) -> HttpResponse:
        if request.method == "GET":
            _warn_disabled_channels(request, Channel.objects.filter(pk=object_id))
        return super().change_view(request, object_id, *args, **kwargs)


def _warn_disabled_channels(request: HttpRequest, channels: QuerySet[Channel] | None = None) -> None:
    channels = Channel.objects.all() if channels is None else channels
    for channel in channels.exclude(disabled_reason=""):
        messages.warning(
            request,
            f"Channel {channel.name} is disabled: {channel.disabled_reason}. Alerts for it wait; "
            "fix the webhook URL, or use the 'Resume delivery' action.",
        )


class DeliveryAttemptInline(admin.TabularInline):
    model = DeliveryAttempt
    extra = 0
    can_delete = False
    fields = ("at", "channel", "status_code", "error", "duration_ms")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class FoldedInline(admin.TabularInline):
    model = Alert
    fk_name = "folded_into"
    verbose_name_plural = "alerts folded into this digest"
    extra = 0
    can_delete = False
    fields = ("created_at", "level", "title", "state")
    readonly_fields = fields
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.action(description="Resend the selected alerts")
def resend(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[Alert]) -> None:
    count = 0
    for alert in queryset.exclude(state__in=(AlertState.PENDING, AlertState.SENDING, AlertState.FOLDED)):
        if alert.channel_id is None:
            channels = Channel.objects.for_level(alert.level)
            for channel in channels:
                Alert.objects.create(
                    rule=alert.rule,
                    bot=alert.bot,
                    channel=channel,
                    source=alert.source,
                    subject=alert.subject,
                    level=alert.level,
                    title=alert.title,
                    message=alert.message,
                    fields=alert.fields,
                )
                count += 1
        else:
            Alert.objects.filter(pk=alert.pk).update(
                state=AlertState.PENDING, attempts=0, next_attempt_at=None, held=False, last_error=""
            )
            count += 1
    enqueue("alerts.tasks.deliver")
    modeladmin.message_user(request, f"{count} alert(s) queued to be sent again.")


@admin.register(Alert)
class AlertAdmin(admin.ModelAdmin):
    list_display = ("created_at", "level", "title", "bot", "channel", "state", "attempts", "sent_at")
    list_filter = ("state", "level", "source", "channel", "bot", "created_at")
    search_fields = ("title", "message", "subject")
    paginator = CappedCountPaginator
    list_select_related = ("bot", "channel")
    readonly_fields = (
        "rule",
        "channel",
        "bot",
        "source",
        "subject",
        "level",
        "title",
        "message",
        "fields",
        "state",
        "created_at",
        "claimed_at",
        "next_attempt_at",
        "sent_at",
        "attempts",
        "last_error",
        "held",
        "folded_into",
    )
    inlines = (DeliveryAttemptInline, FoldedInline)
    actions = (resend,)
    show_full_result_count = False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


class SilenceForm(forms.ModelForm):
    """Days of the week as boxes to tick; the model's ``problems`` judge the whole silence."""

    days = forms.MultipleChoiceField(
        required=False,
        choices=[(day, day.capitalize()) for day in WEEKDAY_NAMES],
        widget=forms.CheckboxSelectMultiple,
        help_text="For 'on the chosen days'.",
    )

    class Meta:
        model = Silence
        fields = ("rule", "until", "repeat", "days", "start_time", "end_time", "reason")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.initial["days"] = self.instance.weekdays

    def clean_days(self) -> str:
        chosen = set(self.cleaned_data.get("days") or [])
        return ",".join(day for day in WEEKDAY_NAMES if day in chosen)


@admin.register(Silence)
class SilenceAdmin(admin.ModelAdmin):
    form = SilenceForm
    list_display = ("rule_shown", "when", "reason", "in_force")
    list_filter = ("rule", "repeat")
    fieldsets = (
        (None, {"fields": ("rule", "reason", "until")}),
        ("Repeating (market time)", {"fields": ("repeat", "days", "start_time", "end_time")}),
    )

    @admin.display(description="rule")
    def rule_shown(self, silence: Silence) -> str:
        return str(silence.rule or "everything")

    @admin.display(description="when")
    def when(self, silence: Silence) -> str:
        if not silence.repeat:
            return f"until {timezone.localtime(silence.until):%Y-%m-%d %H:%M}" if silence.until else ""
        days = "trading days" if silence.repeat == Repeat.TRADING_DAYS else silence.days
        end = f", until {timezone.localtime(silence.until):%Y-%m-%d}" if silence.until else ""
        return f"{days} {silence.start_time:%H:%M}-{silence.end_time:%H:%M}{end}"

    @admin.display(boolean=True, description="in force")
    def in_force(self, silence: Silence) -> bool:
        return silence.in_force(timezone.now())


@admin.action(description="Resume trading for the selected halts")
def resume_trading(
    modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[TradingHalt]
) -> HttpResponse | None:
    """Asks first (a page listing the halts, as Django's delete action does), then resumes.

    The cockpit's banner posts here too, so its button gets the same question.
    """
    if request.POST.get("confirmed") != "yes":
        return TemplateResponse(
            request,
            "admin/alerts/resume_trading_confirmation.html",
            {
                **modeladmin.admin_site.each_context(request),
                "title": "Resume trading?",
                "halts": list(queryset.select_related("bot")),
                "opts": modeladmin.model._meta,
            },
        )
    who = request.user.get_username() if request.user.is_authenticated else ""
    count = queryset.filter(resumed_at__isnull=True).update(resumed_at=timezone.now(), resumed_by=who)
    modeladmin.message_user(request, f"Trading resumed for {count} halt(s).")
    return None


@admin.register(TradingHalt)
class TradingHaltAdmin(admin.ModelAdmin):
    list_display = ("bot", "trading_day", "ends_on", "reason", "created_at", "resumed_at", "resumed_by")
    list_filter = ("bot", "resumed_at")
    readonly_fields = ("bot", "trading_day", "ends_on", "reason", "created_at", "resumed_at", "resumed_by")
    actions = (resume_trading,)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(SummarySchedule)
class SummaryScheduleAdmin(admin.ModelAdmin):
    list_display = (
        "__str__",
        "enabled",
        "send_at",
        "last_sent_day",
        "weekly_enabled",
        "weekly_send_at",
        "last_weekly_sent_day",
    )
    list_editable = ("enabled", "send_at", "weekly_enabled", "weekly_send_at")
    list_display_links = ("__str__",)
    readonly_fields = ("last_sent_day", "last_weekly_sent_day")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return not SummarySchedule.objects.exists()

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
