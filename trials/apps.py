from django.apps import AppConfig
from django.db.models.signals import post_migrate


class TrialsConfig(AppConfig):
    name = "trials"
    verbose_name = "Trials"

    def ready(self) -> None:
        # Importing trials.rules registers the per-trial permissions.
        import trials.rules  # noqa: F401
        from trials.database_roles import application_role_grant
        from trials.roles import roles_sync

        post_migrate.connect(roles_sync, sender=self, dispatch_uid="trials-roles-sync")
        # post_migrate is sent once every app's migrations have run, so all tables exist here.
        post_migrate.connect(
            application_role_grant, sender=self, dispatch_uid="trials-application-role-grant"
        )
