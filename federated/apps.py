from django.apps import AppConfig


class FederatedConfig(AppConfig):
    """Federated telemetry under differential privacy (Flower + OpenDP): see DESIGN.md §2."""

    name = "federated"
    verbose_name = "Federated telemetry"
