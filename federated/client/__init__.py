"""The on-device half of federated telemetry: a local event log and the Flower ClientApp an
assistant app embeds. See README.md in this folder for the integration."""
