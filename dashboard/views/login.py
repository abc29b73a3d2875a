"""``/login/`` and ``/logout/``: the dashboard's own sign-in page (``settings.LOGIN_URL``).

Django's LoginView with the admin's form, which lets only active staff in: the dashboard
is for staff, and a non-staff account let in here would only be sent back. ``/admin/login/``
keeps working. Logging out is a POST (Django 5 refuses a GET), from the header's button.
"""

from __future__ import annotations

from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth import views as auth_views

login = auth_views.LoginView.as_view(
    template_name="dashboard/login.html",
    authentication_form=AdminAuthenticationForm,
)

logout = auth_views.LogoutView.as_view()
