from django.apps import AppConfig


class SurveysConfig(AppConfig):
    name = "surveys"
    verbose_name = "Surveys"

    def ready(self) -> None:
        from surveys.services import participant_responses_erase
        from trials.signals import participant_erased

        participant_erased.connect(participant_responses_erase, dispatch_uid="surveys-erase")
