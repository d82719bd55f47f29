from django.apps import AppConfig


class SSHGatewayConfig(AppConfig):
    name = "sshgateway"
    verbose_name = "SSH gateway"
