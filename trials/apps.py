from django.apps import AppConfig
from django.db.models.signals import post_migrate


class TrialsConfig(AppConfig):
    name = "trials"
    verbose_name = "Trials"

    def ready(self) -> None:
        from trials.roles import roles_sync

        post_migrate.connect(roles_sync, sender=self, dispatch_uid="trials-roles-sync")
