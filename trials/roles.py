"""The platform's groups and their model permissions, kept in step with the code.

Model permissions say what kind of thing a group may touch; which trials a person may touch is
per-trial (trials.rules). Synchronised after every ``migrate``, so a fresh database and an
upgraded one end up with the same groups.
"""

from django.apps import apps
from django.contrib.auth.management import create_permissions
from django.contrib.auth.models import Group, Permission

GROUP_PERMISSIONS: dict[str, list[str]] = {
    "Coordinators": [
        "trials.add_trial",
        "trials.change_trial",
        "trials.view_trial",
        "trials.add_arm",
        "trials.change_arm",
        "trials.view_arm",
        "trials.add_preregistration",
        "trials.change_preregistration",
        "trials.view_preregistration",
        "trials.add_protocoldeviation",
        "trials.view_protocoldeviation",
        "trials.add_consentdocument",
        "trials.change_consentdocument",
        "trials.view_consentdocument",
        "trials.view_participant",
        "trials.change_participant",
        "trials.view_oversightbody",
        "trials.view_approval",
        "trials.view_community",
        "trials.view_flourishingprofile",
        "trials.add_trialmember",
        "trials.view_trialmember",
        "analytics.view_analysisrun",
        "analytics.add_analysisrun",  # starting a run from the admin
        "surveys.view_instrument",
        "surveys.add_instrument",  # loading a licensed pack
        "surveys.add_wave",
        "surveys.change_wave",
        "surveys.view_wave",
        "surveys.view_invitation",
        "surveys.change_invitation",  # letting an invitation in doubt go again
        "surveys.view_response",
        "federated.view_privacybudget",
        "federated.view_privacycharge",
        "federated.view_telemetryrelease",
        "federated.view_releasedaggregate",
        "safety.view_safetyflag",
        "safety.change_safetyflag",  # acknowledging a flag
        "safety.view_canarycheck",  # the arms' drift watch
        "safety.view_adverseevent",
        "safety.add_adverseevent",
        "safety.change_adverseevent",  # assessing one
    ],
    "Oversight members": [
        "trials.view_trial",
        "trials.view_arm",
        "trials.view_preregistration",
        "trials.view_protocoldeviation",
        "trials.view_approval",
        "trials.view_oversightbody",
    ],
    "Community authors": [
        "trials.view_community",
        "trials.add_flourishingprofile",
        "trials.view_flourishingprofile",
    ],
    "Analysts": [
        "analytics.view_analysisrun",
        "federated.view_privacybudget",
        "federated.view_privacycharge",
        "federated.view_telemetryrelease",
        "federated.view_releasedaggregate",
    ],
}


def roles_sync(**kwargs) -> None:
    # Other apps' permissions may not exist yet at this point of post_migrate: make them first
    # (idempotent, the same function Django runs).
    for app_config in apps.get_app_configs():
        create_permissions(app_config, verbosity=0)
    for name, codenames in GROUP_PERMISSIONS.items():
        group, _ = Group.objects.get_or_create(name=name)
        permissions = []
        for dotted in codenames:
            app_label, codename = dotted.split(".")
            permissions.append(
                Permission.objects.get(content_type__app_label=app_label, codename=codename)
            )
        group.permissions.set(permissions)
