from django.apps import AppConfig


class FederatedConfig(AppConfig):
    """Federated telemetry under differential privacy (Flower + OpenDP): devices compute their
    telemetry and only DP aggregates are stored (docs/architecture.md, "The flow")."""

    name = "federated"
    verbose_name = "Federated telemetry"

    def ready(self) -> None:
        from federated.schema import dose_plan_errors
        from trials.plan import register_freeze_check

        # A dose section's outcome must be a pre-registered outcome of the plan.
        register_freeze_check(dose_plan_errors)
