"""Coordinator admin. Actions call services; the full coordinator workflow grows in trials/."""

from django.contrib import admin, messages
from django.core.exceptions import ValidationError

from trials.models import (
    Arm,
    Community,
    ConsentDocument,
    OversightBody,
    PreRegistration,
    Trial,
    TrialEvent,
    TrialOversight,
)
from trials.services import trial_transition


class ArmInline(admin.TabularInline):
    model = Arm
    extra = 0
    fields = ["slug", "name", "is_control", "model_id", "model_version", "config_hash"]
    readonly_fields = ["config_hash"]

    def has_change_permission(self, request, obj=None) -> bool:
        return obj is not None and obj.state == Trial.State.DRAFT


class OversightInline(admin.TabularInline):
    model = TrialOversight
    extra = 0


class TrialEventInline(admin.TabularInline):
    model = TrialEvent
    extra = 0
    fields = ["at", "kind", "actor", "detail"]
    readonly_fields = fields
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False


def _transition_action(target: str):
    @admin.action(description=f"Move to {Trial.State(target).label}")
    def action(modeladmin, request, queryset):
        for trial in queryset:
            try:
                trial_transition(trial=trial, to=target, actor=request.user)
            except ValidationError as error:
                modeladmin.message_user(
                    request, f"{trial.slug}: {' '.join(error.messages)}", messages.ERROR
                )
            else:
                modeladmin.message_user(request, f"{trial.slug}: now {Trial.State(target).label}.")

    action.__name__ = f"move_to_{target}"
    return action


@admin.register(Trial)
class TrialAdmin(admin.ModelAdmin):
    list_display = ["slug", "title", "state", "created_at"]
    list_filter = ["state"]
    search_fields = ["slug", "title"]
    readonly_fields = ["state", "created_at"]
    inlines = [ArmInline, OversightInline, TrialEventInline]
    actions = [_transition_action(state) for state in Trial.State.values]


@admin.register(PreRegistration)
class PreRegistrationAdmin(admin.ModelAdmin):
    list_display = ["trial", "version", "frozen_at", "sha256"]
    readonly_fields = ["trial", "version", "plan", "frozen_at", "sha256"]

    def has_change_permission(self, request, obj=None) -> bool:
        return obj is None or obj.frozen_at is None


admin.site.register(OversightBody)
admin.site.register(Community)
admin.site.register(ConsentDocument)
