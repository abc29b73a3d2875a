"""The two dashboard groups: viewers (look, no actions) and operators (workers.operate_jobs)."""

from django.db import migrations


def create_groups(apps, schema_editor):
    ContentType = apps.get_model("contenttypes", "ContentType")
    Permission = apps.get_model("auth", "Permission")
    Group = apps.get_model("auth", "Group")
    content_type, _ = ContentType.objects.get_or_create(app_label="workers", model="jobrecord")
    operate, _ = Permission.objects.get_or_create(
        content_type=content_type,
        codename="operate_jobs",
        defaults={"name": "Can retry, cancel and discard jobs, and pause queues and schedules"},
    )
    Group.objects.get_or_create(name="Dashboard viewers")
    operators, _ = Group.objects.get_or_create(name="Dashboard operators")
    operators.permissions.add(operate)


def remove_groups(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name__in=["Dashboard viewers", "Dashboard operators"]).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("workers", "0004_operate_jobs_permission"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(create_groups, remove_groups)]
