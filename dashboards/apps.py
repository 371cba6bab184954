from django.apps import AppConfig


class DashboardsConfig(AppConfig):
    name = "dashboards"
    verbose_name = "Dashboards"

    def ready(self) -> None:
        # analyze_trial (in analytics, which may not import this layer) writes a run's report
        # with --report through the renderer registered here (docs/architecture.md, The layers).
        from analytics.management.commands.analyze_trial import register_report_renderer
        from dashboards.report import render_report

        register_report_renderer(render_report)
