"""Template versions: drafts, publishing, rollback, and the legacy one-variant API mapped onto them.

Publishing is the one place that changes what new sends render: it checks the version (every
content compiles and renders the schema's sample), marks it published (immutable from then
on), makes it current, and writes its contents into the `Template` rows that accepting and
routing read. Rolling back is publishing an older version again.
"""

from django.db import transaction
from django.utils import timezone

from core.errors import ApiError
from core.vocabulary import Channel
from templates_app import rendering
from templates_app.models import MessageTemplate, Template, TemplateVersion
from templates_app.rendering import CONTENT_FIELDS, RenderError
from templates_app.variables import schema_error, variable_errors


def sample_for(version: TemplateVersion) -> dict:
    """Variables to preview or test `version` with: its schema's sample ({} without a schema, or
    when the schema is too costly to build one from). RenderError(bound="busy") never: see Busy."""
    if not version.variables_schema:
        return {}
    try:
        sample = rendering.sample_variables(version.variables_schema)
    except RenderError:
        return {}
    return sample if isinstance(sample, dict) else {}


def content_problems(contents) -> list[tuple[str, str]]:
    """(field, message) for contents that cannot be saved: shape, duplicates, syntax."""
    if not isinstance(contents, list) or not contents:
        return [("contents", "A version needs at least one channel × locale content.")]
    problems, seen, well_formed = [], set(), []
    for index, content in enumerate(contents):
        where = f"contents.{index}"
        if not isinstance(content, dict):
            problems.append((where, "Expected an object."))
            continue
        channel, locale = content.get("channel"), content.get("locale")
        if channel not in Channel.values:
            problems.append((f"{where}.channel", f"Unknown channel {channel!r}."))
            continue
        if (channel, locale) in seen:
            problems.append((f"{where}.locale", f"A second {channel} content for {locale!r}."))
        seen.add((channel, locale))
        if channel == Channel.EMAIL and not content.get("subject"):
            problems.append((f"{where}.subject", f"{channel}/{locale}: email contents need a subject."))
        if not (content.get("body") or content.get("html_body")):
            problems.append((f"{where}.body", f"{channel}/{locale}: a body is required."))
        well_formed.append(index)
    # Every content's templates checked in one bounded request: one budget for the version, not one per part.
    for position, field, message in rendering.content_problems([contents[index] for index in well_formed]):
        index = well_formed[position]
        channel, locale = contents[index].get("channel"), contents[index].get("locale")
        problems.append((f"contents.{index}.{field}", f"{channel}/{locale} {field}: {message}"))
    return problems


def publish_problems(version: TemplateVersion) -> list[tuple[str, str]]:
    """What stops `version` from being published: bad contents, a bad schema, or a content that
    does not render the schema's sample (each naming channel, locale and field)."""
    problem = schema_error(version.variables_schema or {})
    if problem:
        return [("variables_schema", f"Not a valid JSON Schema: {problem}")]
    problems = content_problems(version.contents)
    if problems:
        return problems
    if not version.variables_schema:
        return []  # nothing says which variables exist: compiling is all that can be checked
    try:
        sample = rendering.sample_variables(version.variables_schema)
    except RenderError as exc:
        return [("variables_schema", f"No sample could be built from the schema: {exc}")]
    if not isinstance(sample, dict) or variable_errors(version.variables_schema, sample):
        return []  # no sample this schema accepts could be made up; give it `examples` to be checked
    try:
        rendered = rendering.render_each(version.contents, sample)
    except RenderError as exc:
        return [("contents", f"Rendering the schema's sample stopped: {exc}")]
    for index, result in enumerate(rendered):
        if "error" in result:
            content = version.contents[index]
            field = result["field"].removeprefix(f"contents.{index}.").removeprefix(f"contents.{index}") or "body"
            problems.append((f"contents.{index}.{field}", f"{content['channel']}/{content['locale']} {field} does not render "
                                                          f"the schema's sample: {result['error']}"))
    return problems


def raise_problems(problems: list[tuple[str, str]]) -> None:
    if problems:
        field, message = problems[0]
        more = f" (and {len(problems) - 1} more: {', '.join(f for f, _ in problems[1:4])})" if len(problems) > 1 else ""
        raise ApiError(400, "invalid_template", message + more, field)


def normalized(contents: list[dict]) -> list[dict]:
    return [{"channel": c["channel"], "locale": c.get("locale") or "en",
             **{field: c.get(field) or "" for field in CONTENT_FIELDS}} for c in contents]


def create_draft(name: str, *, contents: list | None = None, copy_from: int | None = None, variables_schema=None,
                 default_locale: str | None = None, note: str = "", description: str = "", category: str = "") -> TemplateVersion:
    """A new draft of template `name` (created if new): its own contents, or a copy of version `copy_from`."""
    with transaction.atomic():
        template, created = MessageTemplate.objects.select_for_update().get_or_create(
            name=name, defaults={"description": description, "category": category})
        if created:
            adopt_unversioned(template)
        base = None
        if copy_from is not None:
            base = template.versions.filter(number=copy_from).first()
            if base is None:
                raise ApiError(404, "not_found", f"Template {name!r} has no version {copy_from}.", "copy_from")
        elif template.current_version:
            base = template.versions.get(number=template.current_version)
        contents = normalized(contents) if contents is not None else (base.contents if base else None)
        raise_problems(content_problems(contents))
        number = (template.versions.order_by("-number").values_list("number", flat=True).first() or 0) + 1
        return TemplateVersion.objects.create(
            template=template, number=number, contents=contents, note=note,
            variables_schema=variables_schema if variables_schema is not None else (base.variables_schema if base else {}),
            default_locale=default_locale or (base.default_locale if base else "en"),
        )


def edit_draft(version: TemplateVersion, **changes) -> TemplateVersion:
    """Change a draft. The template's lock (which publishing takes too) makes "still a draft" and
    the write one step: a version published meanwhile is refused, never turned back into a draft."""
    if "contents" in changes:
        changes["contents"] = normalized(changes["contents"])
        raise_problems(content_problems(changes["contents"]))
    with transaction.atomic():
        MessageTemplate.objects.select_for_update().filter(pk=version.template_id).first()
        version.refresh_from_db()
        if not version.is_draft:
            raise ApiError(409, "version_published", f"Version {version.number} is published and cannot change; "
                           "create a new draft from it.", "number")
        for field, value in changes.items():
            setattr(version, field, value)
        version.save(update_fields=list(changes) or None)
    return version


def publish(name: str, number: int) -> TemplateVersion:
    """Make version `number` current (publishing it if it is a draft); new sends render it from now on."""
    checked = TemplateVersion.objects.filter(template__name=name, number=number).first()
    if checked is None:
        raise ApiError(404, "not_found", f"Template {name!r} has no version {number}.", "number")
    # Checked before the template's lock is taken: rendering may take seconds, and sends and
    # edits of this template must not wait for it.
    raise_problems(publish_problems(checked))
    with transaction.atomic():
        template = MessageTemplate.objects.select_for_update().filter(name=name).first()
        version = template and template.versions.filter(number=number).first()
        if version is None:
            raise ApiError(404, "not_found", f"Template {name!r} has no version {number}.", "number")
        if (version.contents, version.variables_schema, version.default_locale) != (
                checked.contents, checked.variables_schema, checked.default_locale):
            raise ApiError(409, "version_changed", f"Version {number} changed while it was being checked; "
                           "publish it again.", "number")
        if version.is_draft:
            version.published_at = timezone.now()
            version.save(update_fields=["published_at"])
        template.current_version = number
        template.save(update_fields=["current_version"])
        Template.objects.filter(name=name).delete()
        Template.objects.bulk_create([
            Template(name=name, variables_schema=version.variables_schema, **content) for content in version.contents
        ])
    return version


def adopt_unversioned(template: MessageTemplate) -> None:
    """Template rows made before versions existed (or by the one-variant API) become version 1."""
    rows = list(Template.objects.filter(name=template.name))
    if not rows:
        return
    TemplateVersion.objects.create(
        template=template, number=1, published_at=timezone.now(), note="Adopted from the template's variants.",
        contents=[{"channel": r.channel, "locale": r.locale, **{f: getattr(r, f) for f in CONTENT_FIELDS}} for r in rows],
        variables_schema=rows[0].variables_schema, default_locale="en",
    )
    template.current_version = 1
    template.save(update_fields=["current_version"])


def add_variant(data: dict) -> Template:
    """`POST /api/v1/templates` (one name, channel and locale): a new version with that content
    added to the current one's, published at once. 409 if the variant exists already."""
    content = {field: data.get(field, "") for field in CONTENT_FIELDS}
    with transaction.atomic():
        template, created = MessageTemplate.objects.select_for_update().get_or_create(name=data["name"])
        if created:
            adopt_unversioned(template)
        if Template.objects.filter(name=data["name"], channel=data["channel"], locale=data["locale"]).exists():
            raise ApiError(409, "template_exists", f"Template {data['name']!r} already has a {data['channel']} variant "
                           f"for {data['locale']!r}.", "name")
        current = template.versions.filter(number=template.current_version).first()
        version = create_draft(
            data["name"], contents=[*(current.contents if current else []),
                                    {"channel": data["channel"], "locale": data["locale"], **content}],
            variables_schema=data.get("variables_schema") or (current.variables_schema if current else {}),
            default_locale=current.default_locale if current else data["locale"],
            note=f"Added the {data['channel']} content for {data['locale']} (POST /api/v1/templates).",
        )
        publish(data["name"], version.number)
    return Template.objects.get(name=data["name"], channel=data["channel"], locale=data["locale"])
