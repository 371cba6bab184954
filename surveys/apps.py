from django.apps import AppConfig


class SurveysConfig(AppConfig):
    name = "surveys"
    verbose_name = "Surveys"

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        from surveys.dose import dose_outcome_changes, dose_outcome_errors
        from surveys.selectors import plan_survey_errors, recruitment_url
        from surveys.services import participant_responses_erase
        from trials.plan import register_freeze_check
        from trials.selectors import register_recruitment_link
        from trials.signals import participant_erased
        from trials.telemetry import register_outcome_change_reader

        participant_erased.connect(participant_responses_erase, dispatch_uid="surveys-erase")
        # A plan is frozen only when the instruments, scores and waves it names exist here.
        register_freeze_check(plan_survey_errors)
        # The DP dose release sends each device its own outcome change, read from the scores.
        register_freeze_check(dose_outcome_errors)
        register_outcome_change_reader(dose_outcome_changes)
        # The trial page's setup checklist shows the front door's recruitment link.
        register_recruitment_link(recruitment_url)
        # The shipped instruments are data files; every migrate brings the database in line.
        post_migrate.connect(_sync_shipped_instruments, sender=self, dispatch_uid="surveys-sync")


def _sync_shipped_instruments(sender, **kwargs) -> None:
    from surveys.services import instruments_sync

    instruments_sync()
