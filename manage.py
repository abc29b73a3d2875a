#!/usr/bin/env python
import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "jobsite.settings.base")
    from django.core.exceptions import ImproperlyConfigured
    from django.core.management import execute_from_command_line

    try:
        execute_from_command_line(sys.argv)
    except ImproperlyConfigured as exc:
        # A bad setting (DATABASE_URL, say) is the operator's to fix: say which, not a traceback.
        sys.stderr.write(f"bad settings: {exc}\n")
        sys.exit(2)


if __name__ == "__main__":
    main()
