"""The alerts admin: rules, channels, silences, history, halts, summary time (alerts.yaml imports and exports
the rules, channels and summary time)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db import models
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.html import format_html

from alerts.delivery import send_test_alert
from alerts.models import (
    WEEKDAY_NAMES,
    Alert,
    AlertQuerySet,
    AlertRule,
    Channel,
    ChannelQuerySet,
    DeliveryAttempt,
    OperatorAction,
    QuickEnd,
    Repeat,
    Silence,
    SummarySchedule,
    TradingHalt,
    TradingHaltQuerySet,
)
from alerts.rules import JUDGED_FIELDS, describe, problems
from alerts.tasks import enqueue
from alerts.transports import TRANSPORTS, ConfigError, Setting, transport_class
from trades.formats import format_duration, format_market_time
from trades.paging import CappedCountPaginator
from trades.readonly import ReadOnlyAdminMixin


class AlertRuleForm(forms.ModelForm):
    """Add, change and the rule list's inline edits: the kind's judge (``alerts.rules``) decides.

    An inline edit holds only some fields; the rest are the stored rule's, so a
    list edit is judged as the whole rule it would make. A refusal names the
    field, and the admin then saves nothing of the list.
    """

    class Meta:
        model = AlertRule
        fields = "__all__"

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if any(name in self.errors for name in JUDGED_FIELDS):
            return cleaned  # a field already refused on its own: judge once it parses
        candidate = {name: cleaned.get(name, getattr(self.instance, name)) for name in JUDGED_FIELDS}
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
        (
            "Channels",
            {"fields": ("channels",), "description": "None chosen: every channel that takes the level."},
        ),
    )
    # Tick boxes: usable on a phone, unlike a multiple-select list.
    formfield_overrides = {models.ManyToManyField: {"widget": forms.CheckboxSelectMultiple}}

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


def _setting_field(setting: Setting, stored: dict[str, Any]) -> forms.Field:
    """One form field for one setting; a saved secret is never shown back (ChannelForm shows a typed one
    again only on the refused form it was typed into)."""
    env = f"Empty settings: the environment's ({setting.env})."
    if setting.secret:
        return forms.CharField(
            label=setting.label,
            required=False,
            widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off", "size": 80}),
            help_text=" ".join(p for p in (setting.help, "Leave empty to keep the current one.", env) if p),
        )
    value = stored.get(setting.key, "")
    return forms.CharField(
        label=setting.label,
        required=False,
        initial=", ".join(value) if isinstance(value, list) else value,
        widget=forms.TextInput(attrs={"size": 60}),
        help_text=" ".join(p for p in (setting.help, env) if p),
    )


# Said before the first try: the name is a slug.
NAME_RULE = "Letters, digits, hyphens and underscores only (no spaces), e.g. phone-telegram."


class ChannelForm(forms.ModelForm):
    """The kind's settings as fields, checked by its transport; secrets are write-only.

    A new channel has every kind's settings (only the chosen kind's are read;
    the page shows only those, change_form.html); a saved one shows its own
    kind's, and keeps its kind.
    """

    use_environment = forms.BooleanField(
        required=False,
        help_text="Forget the settings entered here and use the environment's for this kind.",
    )

    class Meta:
        model = Channel
        fields = ("name", "kind", "min_level", "enabled", "rate_limit_per_minute", "disabled_reason")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        stored = self.instance.config if self.instance.pk else {}
        for kind in self.kinds():
            for setting in transport_class(kind).SETTINGS:
                self.fields[field_name(kind, setting)] = _setting_field(setting, stored)
        if self.instance.pk and "kind" in self.fields:
            self.fields["kind"].disabled = True
            self.fields["kind"].help_text = "To change the kind, add a new channel."
        if "name" in self.fields:
            self.fields["name"].help_text = NAME_RULE
        if self.is_bound:
            # A refused form comes back with what was typed, secrets included: only the typed value is
            # in the data (a blank keeps the stored secret, which is never put into the page).
            for field in self.fields.values():
                if isinstance(field.widget, forms.PasswordInput):
                    field.widget.render_value = True

    def kinds(self) -> list[str]:
        return [self.instance.kind] if self.instance.pk else list(TRANSPORTS)

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        kind = self.instance.kind if self.instance.pk else cleaned.get("kind")
        if kind not in TRANSPORTS:
            return cleaned
        transport = transport_class(kind)
        stored = self.instance.config if self.instance.pk else {}
        self.new_config: dict[str, Any] = {}
        if cleaned.get("use_environment"):
            return cleaned
        values: dict[str, Any] = {}
        for setting in transport.SETTINGS:
            value = (cleaned.get(field_name(kind, setting)) or "").strip()
            if not value and setting.secret:
                value = stored.get(setting.key, "")  # blank on change keeps the stored secret
            if value:
                values[setting.key] = value
        if values:
            try:
                values = transport.check(values)
            except ConfigError as exc:
                self.add_error(field_name(kind, transport.setting(exc.key)), exc.problem)
        self.new_config = values
        return cleaned

    def save(self, commit: bool = True) -> Channel:
        channel: Channel = super().save(commit=False)
        before = channel.config  # the settings are not a model field of the form: still the stored ones
        channel.config = getattr(self, "new_config", before)
        if channel.pk and channel.config != before:
            # A new destination is a fresh start after a permanent failure.
            channel.disabled_reason = ""
            channel.disabled_at = None
        if commit:
            channel.save()
        return channel


def field_name(kind: str, setting: Setting) -> str:
    return f"{kind}__{setting.key}"


@admin.action(description="Send a test alert through the selected channels")
def send_test(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[Channel]) -> None:
    for result in send_test_alert(channels=list(queryset)):
        level = messages.SUCCESS if result.ok else messages.ERROR
        modeladmin.message_user(request, f"{result.channel.name}: test alert {result.words}", level)


@admin.action(description="Resume delivery (clear the failure that disabled the channel)")
def resume_channel(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: ChannelQuerySet) -> None:
    count = queryset.resume()
    enqueue("alerts.tasks.deliver")
    modeladmin.message_user(request, f"{count} channel(s) resumed; waiting alerts are being sent.")


@admin.register(Channel)
class ChannelAdmin(admin.ModelAdmin):
    form = ChannelForm
    list_display = (
        "name",
        "kind",
        "destination_shown",
        "status",
        "last_success",
        "min_level",
        "enabled",
        "rate_limit_per_minute",
    )
    list_editable = ("min_level", "enabled", "rate_limit_per_minute")
    list_filter = ("kind", "enabled")
    readonly_fields = ("destination_shown", "status", "last_success", "disabled_at")
    actions = (send_test, resume_channel)

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        # The kind's setting fields are made by the form itself, not the model: name only the model's.
        kwargs["fields"] = [*ChannelForm.Meta.fields, "use_environment"]
        return super().get_form(request, obj, change, **kwargs)

    def get_fieldsets(self, request: HttpRequest, obj: Channel | None = None) -> list[tuple[Any, Any]]:
        general = ["name", "kind"]
        if obj is not None:
            general += ["destination_shown", "status", "last_success"]
        fieldsets: list[tuple[Any, Any]] = [(None, {"fields": general})]
        for kind in [obj.kind] if obj is not None else list(TRANSPORTS):
            transport = transport_class(kind)
            fieldsets.append(
                (
                    f"{transport.label} settings",
                    {
                        "fields": [field_name(kind, s) for s in transport.SETTINGS],
                        # change_form.html shows only the chosen kind's settings
                        "classes": ["channel-settings", f"kind-{kind}"],
                    },
                )
            )
        fieldsets.append((None, {"fields": ["use_environment"]}))
        fieldsets.append(
            (
                "Delivery",
                {
                    "fields": [
                        "min_level",
                        "enabled",
                        "rate_limit_per_minute",
                        "disabled_reason",
                        "disabled_at",
                    ]
                },
            )
        )
        return fieldsets

    def response_change(self, request: HttpRequest, obj: Channel) -> HttpResponse:
        if "_send_test" in request.POST:
            send_test(self, request, Channel.objects.filter(pk=obj.pk))
            return HttpResponseRedirect(request.path)
        return super().response_change(request, obj)

    @admin.display(description="destination")
    def destination_shown(self, channel: Channel) -> str:
        if channel.kind not in TRANSPORTS:
            return f"unknown kind {channel.kind!r}"
        if not channel.is_configured:
            names = ", ".join(s.env for s in channel.transport_class.SETTINGS if s.required)
            return f"none: alerts are stored, not sent (set {names} or enter settings here)"
        origin = "from the environment" if channel.uses_environment else "entered here"
        return f"{channel.destination} ({origin})"

    @admin.display(description="state")
    def status(self, channel: Channel) -> str:
        """What its last sends did (``Channel.state_words``); a problem in red."""
        if channel.enabled and (channel.disabled_reason or channel.is_failing):
            return format_html(
                '<strong class="channel-state problem" style="color:#ba2121">⚠ {}</strong>',
                channel.state_words,
            )
        return format_html('<span class="channel-state">{}</span>', channel.state_words)

    @admin.display(description="last success")
    def last_success(self, channel: Channel) -> str:
        return format_market_time(channel.last_success_at) if channel.last_success_at else "never"

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
            "fix its settings, or use the 'Resume delivery' action.",
        )


class DeliveryAttemptInline(admin.TabularInline):
    model = DeliveryAttempt
    extra = 0
    can_delete = False
    fields = ("at", "channel", "status_code", "error", "reached", "took")
    readonly_fields = fields

    @admin.display(description="took", ordering="duration_ms")
    def took(self, attempt: DeliveryAttempt) -> str:
        return format_duration(attempt.duration_ms / 1000)

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
def resend(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: AlertQuerySet) -> None:
    count = queryset.resend(timezone.now())
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
    """Days of the week as boxes to tick, and quick ends computed in market time when saved; the
    model's ``clean`` judges the whole silence (an end in the past is refused there)."""

    quick_end = forms.TypedChoiceField(
        required=False,
        label="Ends",
        choices=[("", "at the time below"), *QuickEnd.choices],
        coerce=QuickEnd,
        empty_value=None,
        help_text="A quick choice sets the end when you save, in market time, replacing the time below.",
    )
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

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if quick := cleaned.get("quick_end"):
            cleaned["until"] = quick.end(timezone.now())
            self.errors.pop("until", None)  # a time typed below and refused is replaced
        return cleaned


@admin.register(Silence)
class SilenceAdmin(admin.ModelAdmin):
    form = SilenceForm
    list_display = ("rule_shown", "when", "reason", "in_force")
    list_filter = ("rule", "repeat")
    fieldsets = (
        (None, {"fields": ("rule", "reason", "quick_end", "until")}),
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
    modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: TradingHaltQuerySet
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
    now = timezone.now()
    count = queryset.resume(by=who, now=now)
    modeladmin.message_user(request, f"Trading resumed for {count} halt(s).")
    for halt in queryset.filter(resumed_at=now, resumed_by=who).resumed_quiet_at(now):
        modeladmin.message_user(request, f"{halt.quiet_until}.")
    return None


@admin.register(TradingHalt)
class TradingHaltAdmin(admin.ModelAdmin):
    list_display = ("bot", "trading_day", "ends_on", "reason", "created_at", "resumed_at", "resumed_by")
    list_filter = ("bot", "resumed_at")
    readonly_fields = (
        "bot",
        "trading_day",
        "ends_on",
        "reason",
        "halted_by",
        "created_at",
        "resumed_at",
        "resumed_by",
    )
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


@admin.register(OperatorAction)
class OperatorActionAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """What operators changed from their phones (Telegram commands): a record, never edited."""

    list_display = ("at", "who", "action", "target", "outcome")
    list_filter = ("action", "via")
    search_fields = ("who", "outcome")
    date_hierarchy = "at"

    @admin.display(description="bot or rule")
    def target(self, action: OperatorAction) -> str:
        return str(action.bot or action.rule or "")
