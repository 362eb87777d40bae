from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "core"
    verbose_name = "Herald kernel"

    def ready(self):
        from django.contrib.auth.signals import user_login_failed

        from core import throttle

        def count_failed_login(sender, credentials, request=None, **kwargs):
            if request is not None:
                throttle.record_failure("admin", request)

        user_login_failed.connect(count_failed_login, dispatch_uid="herald-count-failed-login", weak=False)
