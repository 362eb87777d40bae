"""Every template that exists becomes version 1 of itself, published and current."""

from django.db import migrations
from django.utils import timezone

FIELDS = ("subject", "title", "body", "html_body")


def adopt(apps, schema_editor):
    Template = apps.get_model("templates_app", "Template")
    MessageTemplate = apps.get_model("templates_app", "MessageTemplate")
    TemplateVersion = apps.get_model("templates_app", "TemplateVersion")
    names = Template.objects.values_list("name", flat=True).distinct()
    for name in names:
        rows = list(Template.objects.filter(name=name))
        template = MessageTemplate.objects.create(name=name, current_version=1)
        TemplateVersion.objects.create(
            template=template, number=1, published_at=timezone.now(), note="Adopted from the template's variants.",
            contents=[{"channel": r.channel, "locale": r.locale, **{f: getattr(r, f) for f in FIELDS}} for r in rows],
            variables_schema=rows[0].variables_schema, default_locale="en",
        )


class Migration(migrations.Migration):
    dependencies = [("templates_app", "0002_versions")]
    operations = [migrations.RunPython(adopt, migrations.RunPython.noop)]
