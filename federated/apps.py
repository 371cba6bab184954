from django.apps import AppConfig


class FederatedConfig(AppConfig):
    """Federated telemetry under differential privacy (Flower + OpenDP): devices compute their
    telemetry and only DP aggregates are stored (docs/architecture.md, "The flow")."""

    name = "federated"
    verbose_name = "Federated telemetry"
