from django.apps import AppConfig


class OperationsConfig(AppConfig):
    name = "strategies.operations"
    label = "operations"
    verbose_name = "Operations"

    def ready(self) -> None:
        from releases.approvals.gates import gate_contribute
        from strategies.operations.gates import drift_gate, operation_gate

        gate_contribute(operation_gate)  # promotions wait for the application's running operation
        gate_contribute(drift_gate)  # and for production to be where Slipway says it is
