"""Create the demo staff user `make run` prints, if it does not exist yet."""

from __future__ import annotations

import os
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Create (or keep) a staff superuser for the local demo and print its login."

    def handle(self, *args: Any, **options: Any) -> None:
        username = os.environ.get("JOBSITE_DEMO_USER", "admin")
        password = os.environ.get("JOBSITE_DEMO_PASSWORD", "jobsite-demo")
        user_model = get_user_model()
        user = user_model.objects.filter(username=username).first()
        if user is None:
            user_model.objects.create_superuser(username=username, email="", password=password)
            self.stdout.write(f"created demo staff user {username!r}")
        elif not user.check_password(password):
            self.stdout.write(f"dashboard login: {username} (existing user; its password was changed)")
            return
        self.stdout.write(f"dashboard login: {username} / {password} (set JOBSITE_DEMO_PASSWORD to change it)")
